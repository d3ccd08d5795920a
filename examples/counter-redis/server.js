// A page counter on Redis. Each request to / increments one key and answers
// with the total, so every instance shows the same count, and it survives
// restarts of the app and of redis-server (the service keeps an append-only
// file). GET /count reads it without counting.
//
// The service comes from the platform: REDIS_URL when exactly one redis
// service is bound, else the first redis entry of VCAP_SERVICES.
const http = require('node:http');
const { createClient } = require('redis');

const port = Number(process.env.PORT || process.env.VCAP_APP_PORT || 3000);
const KEY = 'counter-redis:hits';

function instanceIndex() {
  try {
    const app = JSON.parse(process.env.VCAP_APPLICATION || '{}');
    if (Number.isInteger(app.instance_index)) return app.instance_index;
  } catch {
    // not JSON: fall back below
  }
  return process.env.CF_INSTANCE_INDEX || '0';
}

function redisUrl() {
  if (process.env.REDIS_URL) return process.env.REDIS_URL;
  const services = JSON.parse(process.env.VCAP_SERVICES || '{}');
  const redis = (services.redis || [])[0];
  if (redis && redis.credentials && redis.credentials.uri) return redis.credentials.uri;
  return undefined;
}

const index = instanceIndex();
const url = redisUrl();
const UNBOUND = 'no redis service is bound: skiff create-service redis counter-cache, then skiff bind-service counter-cache counter-redis\n';
// Unbound, it keeps running and says so on every page (an app that exited would only crash again until bound).
if (url === undefined) console.error(UNBOUND.trim());

const client =
  url &&
  createClient({
    url,
    // Commands fail at once while redis is away (the page says so) instead of waiting in a queue.
    disableOfflineQueue: true,
    socket: { reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2000) },
  });
if (client) {
  // The message only: a connection error never carries the URL, and the password must not reach the logs.
  client.on('error', (error) => console.error(`redis: ${error.message}`));
  client.connect().catch(() => {});
}

function answer(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(text);
}

const server = http
  .createServer(async (req, res) => {
    if (!client) return answer(res, 503, UNBOUND);
    try {
      if (req.url === '/count') return answer(res, 200, `${Number(await client.get(KEY)) || 0}\n`);
      if (req.url !== '/') return answer(res, 404, 'not found\n');
      const hits = await client.incr(KEY);
      answer(res, 200, `Hello from counter-redis, instance ${index}: this page was viewed ${hits} time${hits === 1 ? '' : 's'}\n`);
    } catch (error) {
      answer(res, 503, `redis is not reachable right now (${error.message}); try again in a moment\n`);
    }
  })
  .listen(port, () => console.log(`counter-redis instance ${index} listening on ${port}`));

process.on('SIGTERM', () => {
  server.close();
  if (!client) process.exit(0);
  client.quit().catch(() => {}).finally(() => process.exit(0));
});
