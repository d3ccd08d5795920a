// Data services end to end on `skiff up`, part two: PostgreSQL.
// examples/notes-pg (its `pg` npm package installed by the stager) bound
// through its manifest keeps its notes across a restart, in both
// instances, and after its postgres is killed; one app's credentials open
// no other app's database, from inside the app; deleting a bound service
// is refused unless --force, which unbinds first (the variables and the
// credentials go, then the database); deleting an app unbinds it. No
// credential in the platform's log, a backend's log or `skiff events`.
// Every process is ended by pid.

import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PgError, withPg } from '../../services/pgwire';
import { skiff } from '../cli_harness';
import { hasPostgres, request, ROOT, startServicesPlatform } from '../e2e_services_harness';
import { eventually, isAlive } from '../harness';

/** The postmaster's pid, from its data dir. */
function postmaster(dataDir: string): number | undefined {
  try {
    return Number(readFileSync(join(dataDir, 'services', 'postgresql', 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
}

function pgTarget(url: URL, database = url.pathname.slice(1)) {
  return { host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), database };
}

t.test('postgresql services on skiff up: bind, use, restart, kill, isolation, delete', { skip: !hasPostgres && 'PostgreSQL is not installed (npm run setup)' }, async (t) => {
  const { dataDir, home, router, platform, run, envOf, services, exposed } = await startServicesPlatform(t, 'skiff-e2e-pg-');
  const secrets: string[] = [];

  await t.test('two databases', async (t) => {
    t.match(await run(['create-service', 'postgresql', 'notes-db'], 120_000), /^created notes-db: postgresql, plan free$/m);
    t.match(await run(['create-service', 'postgresql', 'files-db', '--plan', 'large'], 120_000), /^created files-db: postgresql, plan large$/m);
    const listed = await services();
    t.match(listed['notes-db'], /^notes-db\s+postgresql\s+free\s+-?\s*healthy \(running, .* of 256 MB\)$/);
    t.match(listed['files-db'], /^files-db\s+postgresql\s+large\s+-?\s*healthy \(running, .* of 4096 MB\)$/);
  });

  const bothRead = async (): Promise<boolean> => {
    const seen = new Set<string>();
    for (let i = 0; i < 8 && seen.size < 2; i++) {
      const m = /^2 notes \(instance (\d)\)\n2\. call bob\n1\. buy milk\n$/.exec((await request(router, 'notes-pg.localhost')).body);
      if (m) seen.add(m[1]!);
    }
    return seen.size === 2;
  };

  await t.test('notes-pg: bound by its manifest; both instances read the notes, after a restart and a postgres crash', async (t) => {
    const pushed = await run(['push', join(ROOT, 'examples', 'notes-pg')], 300_000);
    t.match(pushed, /Installing Node\.js dependencies/, 'the stager installed the pg package');
    t.match((await request(router, 'notes-pg.localhost', '/', { method: 'POST', body: 'buy milk' })).body, /^saved note 1 /);
    t.match((await request(router, 'notes-pg.localhost', '/', { method: 'POST', body: 'call bob' })).body, /^saved note 2 /);
    const env = await envOf('notes-pg');
    const [bound] = (JSON.parse(env.VCAP_SERVICES!) as { postgresql: Array<{ name: string; credentials: { password: string; uri: string } }> }).postgresql;
    t.equal(bound!.name, 'notes-db');
    t.equal(env.DATABASE_URL, bound!.credentials.uri, 'DATABASE_URL: the one postgresql service');
    secrets.push(bound!.credentials.password);

    await run(['restart', 'notes-pg'], 180_000);
    await eventually(bothRead, 'both instances to list both notes after the restart', 30_000);
    t.pass('after a restart, both instances list both notes');

    const killed = postmaster(dataDir)!;
    process.kill(killed, 'SIGKILL');
    await eventually(async () => postmaster(dataDir) !== undefined && postmaster(dataDir) !== killed && (await bothRead()), 'postgres back, the notes with it', 60_000);
    t.pass('postgres killed: its node starts it again, the notes come back (WAL)');
    await eventually(async () => /\shealthy/.test((await services())['notes-db']!), 'notes-db healthy in skiff services', 20_000);
  });

  await t.test('one app\'s credentials open no other app\'s database', async (t) => {
    await run(['push', join(ROOT, 'test', 'fixtures', 'files-app')], 300_000);
    await run(['bind-service', 'files-db', 'files-app'], 180_000);
    const theirs = new URL((await envOf('files-app')).DATABASE_URL!);
    secrets.push(decodeURIComponent(theirs.password));
    // From inside notes-pg, as its uid, with its own role and password: files-app's database.
    const script = `const { Client } = require('pg'); const u = new URL(process.env.DATABASE_URL); u.pathname = ${JSON.stringify(theirs.pathname)}; const c = new Client({ connectionString: u.toString() }); c.connect().then(() => console.log('connected'), (e) => console.log('refused', e.code, e.message)).finally(() => c.end().catch(() => {}));`;
    t.match(await run(['ssh', 'notes-pg', '--', 'node', '-e', script]), new RegExp(`^refused 42501 permission denied for database "${theirs.pathname.slice(1)}"$`, 'm'), 'CONNECT is not granted to other roles');
    const mine = new URL((await envOf('notes-pg')).DATABASE_URL!);
    const refused = await withPg(pgTarget(theirs, mine.pathname.slice(1)), (pg) => pg.rows('SELECT 1')).catch((error: unknown) => error);
    t.equal((refused as PgError).code, '42501', 'nor the other way round');
  });

  await t.test('no credential in the platform\'s log, a backend\'s log or skiff events', async (t) => {
    t.equal(secrets.length, 2, 'two bindings\' passwords were handed out');
    const places = await exposed(['notes-pg', 'files-app']);
    for (const secret of secrets) t.notOk(places.some((text) => text.includes(secret)), 'nowhere');
  });

  await t.test('delete-service: refused while bound; --force unbinds (variables and credentials gone), then the database goes', async (t) => {
    const refused = await skiff(['delete-service', 'notes-db'], home);
    t.equal(refused.code, 1);
    t.match(refused.stderr, /^skiff delete-service: service notes-db is bound to notes-pg: unbind it first .* or delete it with --force\n$/);
    const credentials = new URL((await envOf('notes-pg')).DATABASE_URL!);
    await run(['delete-service', 'notes-db', '--force'], 180_000);
    // The app restarts, rolling, without it.
    // Until the restart has replaced both instances, an old one answers 503 too
    // (its credentials are revoked at once): wait for four answers in a row,
    // which the router spreads over both instances, from new ones.
    const withoutDatabase = async (): Promise<boolean> => {
      for (let i = 0; i < 4; i++) if (!/^no postgresql service is bound/.test((await request(router, 'notes-pg.localhost')).body)) return false;
      return true;
    };
    await eventually(async () => (await envOf('notes-pg')).DATABASE_URL === undefined && (await withoutDatabase()), 'notes-pg to run without its database', 90_000);
    t.pass('no DATABASE_URL: every instance says it has no database');
    const gone = await withPg(pgTarget(credentials), (pg) => pg.rows('SELECT 1')).catch((error: unknown) => error);
    t.type(gone, PgError);
    t.equal((gone as PgError).code, '28P01', 'its credentials log in no more');
    const port = (JSON.parse(readFileSync(join(dataDir, 'services', 'postgresql.json'), 'utf8')) as { port: number }).port;
    const admin = { path: join(dataDir, 'services', 'postgresql', 'run', `.s.PGSQL.${port}`), user: 'postgres', database: 'postgres' };
    const databases = () => withPg(admin, (pg) => pg.rows("SELECT datname FROM pg_database WHERE datname LIKE 'svc%'")).then((rows) => rows.map((r) => r[0]));
    t.notOk((await databases()).includes(credentials.pathname.slice(1)), 'its database is gone');

    // Deleting an app unbinds it: files-db goes without --force.
    await run(['delete', 'files-app', '--force'], 120_000);
    t.match((await services())['files-db'], /^files-db\s+postgresql\s+large\s+-?\s*healthy/, 'files-db is bound to nothing');
    await run(['delete-service', 'files-db'], 120_000);
    t.match(await run(['services']), /^no services yet/m);
    t.same(await databases(), [], 'no service database is left');
    t.ok(existsSync(join(dataDir, 'services', 'postgresql', 'data')), 'the cluster stays, for the next one');
  });

  const code = await platform.stop();
  t.equal(code, 0, 'skiff up stops cleanly');
  t.same([...platform.seen].filter((pid) => isAlive(pid)), [], 'nothing is left running, postgres included');
});
