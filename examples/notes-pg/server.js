// A tiny notes app on PostgreSQL. GET / lists the notes, newest first;
// POST / adds one (the request body is the note). The table is created at
// start, so a fresh database needs nothing else.
//
//   curl -d 'buy milk' http://notes-pg.localhost:8080/
//   curl http://notes-pg.localhost:8080/
//
// The database comes from the platform: DATABASE_URL when exactly one
// postgresql service is bound, else the first postgresql entry of VCAP_SERVICES.
const http = require('node:http');
const { Pool } = require('pg');

const port = Number(process.env.PORT || process.env.VCAP_APP_PORT || 3000);
const MAX_NOTE = 4096;

function instanceIndex() {
  try {
    const app = JSON.parse(process.env.VCAP_APPLICATION || '{}');
    if (Number.isInteger(app.instance_index)) return app.instance_index;
  } catch {
    // not JSON: fall back below
  }
  return process.env.CF_INSTANCE_INDEX || '0';
}

function databaseUrl() {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  const services = JSON.parse(process.env.VCAP_SERVICES || '{}');
  const pg = (services.postgresql || [])[0];
  if (pg && pg.credentials && pg.credentials.uri) return pg.credentials.uri;
  return undefined;
}

const index = instanceIndex();
const connectionString = databaseUrl();
const UNBOUND = 'no postgresql service is bound: skiff create-service postgresql notes-db, then skiff bind-service notes-db notes-pg\n';
// Unbound, it keeps running and says so on every page (an app that exited would only crash again until bound).
if (connectionString === undefined) console.error(UNBOUND.trim());

const pool = connectionString && new Pool({ connectionString, max: 4, connectionTimeoutMillis: 5000 });
// An idle connection the server dropped (postgres restarting) must not end the app; the pool opens a new one.
if (pool) pool.on('error', (error) => console.error(`postgres: ${error.message}`));

/** The table, made once per instance before its first query; tried again after a failure. */
let ready;
function table() {
  ready ??= pool
    .query('CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL, created timestamptz NOT NULL DEFAULT now())')
    .catch((error) => {
      ready = undefined;
      throw error;
    });
  return ready;
}
if (pool) {
  table().then(
    () => console.log('notes table ready'),
    (error) => console.error(`postgres: ${error.message} (the table is made at the first request instead)`),
  );
}

function answer(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > MAX_NOTE) req.destroy(new Error('note too long'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

const server = http
  .createServer(async (req, res) => {
    if (req.url !== '/') return answer(res, 404, 'not found\n');
    if (!pool) return answer(res, 503, UNBOUND);
    try {
      await table();
      if (req.method === 'POST') {
        const body = (await readBody(req)).trim();
        if (body === '') return answer(res, 400, 'a note needs some text: curl -d "buy milk" ...\n');
        const { rows } = await pool.query('INSERT INTO notes (body) VALUES ($1) RETURNING id', [body]);
        return answer(res, 201, `saved note ${rows[0].id} (instance ${index})\n`);
      }
      const { rows } = await pool.query('SELECT id, body FROM notes ORDER BY id DESC LIMIT 100');
      const lines = rows.map((row) => `${row.id}. ${row.body}`);
      answer(res, 200, `${rows.length} note${rows.length === 1 ? '' : 's'} (instance ${index})\n${lines.map((l) => `${l}\n`).join('')}`);
    } catch (error) {
      answer(res, 503, `the database is not reachable right now (${error.message}); try again in a moment\n`);
    }
  })
  .listen(port, () => console.log(`notes-pg instance ${index} listening on ${port}`));

process.on('SIGTERM', () => {
  server.close();
  if (!pool) process.exit(0);
  pool.end().catch(() => {}).finally(() => process.exit(0));
});
