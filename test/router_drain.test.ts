// Drain, with real signals sent by pid to a real router process: SIGTERM
// lets every in-flight request finish (slow responses, a streaming download,
// a request arriving on an already open keep-alive connection), refuses new
// connections, closes idle keep-alive connections and exits 0; SIGUSR1 first
// turns health to 503 for --drain-wait; --drain-timeout bounds the wait.
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import t from 'tap';
import { WebSocket, WebSocketServer } from 'ws';
import { eventually, sleep, startNats } from './harness';
import { busClient, get, registerRoute, startBackend, startRouter, type RouterProcess } from './router_harness';

const CHUNK = Buffer.alloc(64 * 1024, 'abcdefgh');
const STREAM_CHUNKS = 20;

/** /slow?ms=N answers after N ms; /stream sends 20 x 64 KiB chunked over ~2 s; /hang never answers. */
function appHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/slow') {
    const ms = Number(url.searchParams.get('ms') ?? '2000');
    setTimeout(() => res.end(`slow-${ms}-done`), ms);
  } else if (url.pathname === '/stream') {
    let sent = 0;
    const timer = setInterval(() => {
      res.write(CHUNK);
      if (++sent === STREAM_CHUNKS) {
        clearInterval(timer);
        res.end();
      }
    }, 100);
    res.on('close', () => clearInterval(timer));
  } else if (url.pathname === '/hang') {
    // never answers
  } else {
    res.end('ok');
  }
}

function sha(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

interface Result {
  status: number;
  body: Buffer;
  headers: http.IncomingHttpHeaders;
  doneAt: number;
}

/** A GET on its own connection; rejects if the connection is cut. */
function request(port: number, host: string, path: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), headers: res.headers, doneAt: Date.now() }));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('response aborted')));
    });
    req.on('error', reject);
  });
}

/** Resolves with the error code of a fresh TCP connection attempt, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** A raw keep-alive client connection that has completed one request and stays open. */
async function keepAliveConnection(port: number, host: string): Promise<{ socket: net.Socket; closed: Promise<number>; received: () => string }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  socket.write(`GET /fast HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  await eventually(() => /\r\n\r\nok$/.test(data), 'first keep-alive response');
  return { socket, closed, received: () => data };
}

async function statusCode(router: RouterProcess, path: string): Promise<number> {
  return (await get({ port: router.statusPort, path })).status;
}

t.test('SIGTERM: every in-flight request completes, new connections are refused, idle connections close, exit 0', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const router = await startRouter(t, nats, { args: ['--drain-timeout', '10'] });
  const nc = await busClient(t, nats);
  const backend = await startBackend(t, appHandler);
  await registerRoute(nc, router, { port: backend.port, uris: ['drain.localhost'], app: 'drain-app' });

  const idle = await keepAliveConnection(router.port, 'drain.localhost');
  const later = await keepAliveConnection(router.port, 'drain.localhost');
  const lost = await keepAliveConnection(router.port, 'drain.localhost');
  t.teardown(() => {
    idle.socket.destroy();
    later.socket.destroy();
    lost.socket.destroy();
  });

  const requestsBefore = backend.requests.length;
  const slow = [1, 2, 3].map(() => request(router.port, 'drain.localhost', '/slow?ms=2000'));
  const stream = request(router.port, 'drain.localhost', '/stream');
  await eventually(() => backend.requests.length === requestsBefore + 4, 'all four requests reached the app');

  const signalledAt = Date.now();
  router.signal('SIGTERM');
  await eventually(async () => (await statusCode(router, '/health')) === 503, '/health 503', 3000);
  t.equal(await statusCode(router, '/healthz'), 503, '/healthz 503 while draining');
  await eventually(async () => (await tryConnect(router.port)) === 'ECONNREFUSED', 'new connections refused', 1000);
  t.pass(`new connections refused ${Date.now() - signalledAt} ms after SIGTERM`);

  // A keep-alive connection opened before the drain still gets its next request answered, then closed.
  later.socket.write('GET /slow?ms=500 HTTP/1.1\r\nHost: drain.localhost\r\n\r\n');
  await eventually(() => later.received().endsWith('slow-500-done'), 'the keep-alive request answered', 3000);
  const laterDoneAt = Date.now();
  t.match(later.received(), /\r\n\r\nok(HTTP\/1\.1 200 OK\r\n)/, 'request on an open keep-alive connection answered 200');
  t.match(later.received(), /slow-500-done$/, 'with its full body');
  t.match(later.received(), /okHTTP\/1\.1 200 OK\r\n(?:[^\r]+\r\n)*Connection: close\r\n/i, 'and Connection: close during the drain');
  // The router's own answers too: a request for an unknown route on another open connection.
  lost.socket.write('GET / HTTP/1.1\r\nHost: nowhere.localhost\r\n\r\n');
  await eventually(() => /okHTTP\/1\.1 404 /.test(lost.received()), 'the 404 on the open connection', 3000);
  t.match(lost.received(), /okHTTP\/1\.1 404 [^\r]*\r\n(?:[^\r]+\r\n)*Connection: close\r\n/i, 'a router error during the drain carries Connection: close');

  const slowResults = await Promise.all(slow);
  for (const r of slowResults) {
    t.equal(r.status, 200, 'slow request completed with 200');
    t.equal(r.body.toString(), 'slow-2000-done', 'slow request body complete');
  }
  const streamed = await stream;
  t.equal(streamed.status, 200, 'streaming download completed with 200');
  t.equal(streamed.body.length, CHUNK.length * STREAM_CHUNKS, 'streaming download: every byte');
  t.equal(sha(streamed.body), sha(Buffer.concat(Array(STREAM_CHUNKS).fill(CHUNK))), 'streaming download: the right bytes');

  const lastDone = Math.max(streamed.doneAt, ...slowResults.map((r) => r.doneAt), laterDoneAt);
  const idleClosedAt = await idle.closed;
  await later.closed;
  const exit = await router.exited;
  const exitedAt = Date.now();
  t.same(exit, { code: 0, signal: null }, 'router exits 0');
  t.ok(idleClosedAt >= lastDone - 50, 'the idle keep-alive connection stayed until the in-flight requests were done');
  t.ok(exitedAt - signalledAt < 10_000, `exited ${exitedAt - signalledAt} ms after SIGTERM, within --drain-timeout`);
  t.ok(lastDone - signalledAt >= 1500, 'the slow requests really were in flight across the drain');
  t.match(router.log(), /drained/, 'logged the drain');
  t.notMatch(router.log(), /drain timed out/, 'nothing was cut');
});

t.test('SIGUSR1: health 503 at once, still serving for --drain-wait, then refuses connections and exits 0', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const router = await startRouter(t, nats, { args: ['--drain-wait', '2', '--drain-timeout', '5'] });
  const nc = await busClient(t, nats);
  const backend = await startBackend(t, appHandler);
  await registerRoute(nc, router, { port: backend.port, uris: ['usr1.localhost'] });

  router.signal('SIGHUP'); // no access log: must not end the router
  await sleep(100);
  t.equal(await statusCode(router, '/health'), 200, 'healthy before SIGUSR1 (SIGHUP did no harm)');

  const signalledAt = Date.now();
  router.signal('SIGUSR1');
  await eventually(async () => (await statusCode(router, '/health')) === 503, '/health 503 at once', 3000);
  t.equal(await statusCode(router, '/healthz'), 503, '/healthz 503');
  const during = await request(router.port, 'usr1.localhost', '/fast');
  t.equal(during.status, 200, 'new connections still served during the drain wait');
  t.ok(Date.now() - signalledAt < 1500, 'that was inside the wait');
  t.equal(await tryConnect(router.port), 'connected', 'still accepting inside the wait');

  await eventually(async () => (await tryConnect(router.port)) === 'ECONNREFUSED', 'connections refused after the wait', 5000);
  const refusedAfter = Date.now() - signalledAt;
  t.ok(refusedAfter >= 1900, `stopped accepting ${refusedAfter} ms after SIGUSR1 (--drain-wait 2)`);
  const exit = await router.exited;
  t.same(exit, { code: 0, signal: null }, 'router exits 0 after the drain');
  t.ok(Date.now() - signalledAt < 6000, 'promptly: nothing was in flight');
});

t.test('--drain-timeout bounds the wait: a request still running is cut, the router exits 0 in time', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const router = await startRouter(t, nats, { args: ['--drain-timeout', '1'] });
  const nc = await busClient(t, nats);
  const backend = await startBackend(t, appHandler);
  await registerRoute(nc, router, { port: backend.port, uris: ['hang.localhost'] });

  const hanging = request(router.port, 'hang.localhost', '/hang');
  hanging.catch(() => {});
  await eventually(() => backend.requests.some((r) => r.url === '/hang'), 'the request reached the app');
  const signalledAt = Date.now();
  router.signal('SIGTERM');
  const exit = await router.exited;
  const took = Date.now() - signalledAt;
  t.same(exit, { code: 0, signal: null }, 'exits 0');
  t.ok(took >= 900 && took < 4000, `after the 1 s drain timeout (${took} ms)`);
  await t.rejects(hanging, 'the hanging request was cut');
  t.match(router.log(), /drain timed out/, 'the cut is logged');
});

t.test('SIGTERM during the SIGUSR1 wait ends the wait', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const router = await startRouter(t, nats, { args: ['--drain-wait', '30'] });
  router.signal('SIGUSR1');
  await eventually(async () => (await statusCode(router, '/health')) === 503, '/health 503', 3000);
  t.equal(await tryConnect(router.port), 'connected', 'still accepting in the 30 s wait');
  const signalledAt = Date.now();
  router.signal('SIGTERM');
  const exit = await router.exited;
  t.same(exit, { code: 0, signal: null }, 'exits 0');
  t.ok(Date.now() - signalledAt < 3000, 'without waiting out --drain-wait');
});

t.test('SIGTERM: open WebSockets get close code 1001, the router exits 0', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const router = await startRouter(t, nats, { args: ['--drain-timeout', '5'] });
  const nc = await busClient(t, nats);
  const backend = await startBackend(t, appHandler, (server) => {
    const wss = new WebSocketServer({ server });
    wss.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
  });
  await registerRoute(nc, router, { port: backend.port, uris: ['ws.localhost'] });

  const clients = await Promise.all(
    [1, 2].map(
      () =>
        new Promise<{ ws: WebSocket; closed: Promise<{ code: number; reason: string }> }>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${router.port}/chat`, { headers: { host: 'ws.localhost' } });
          const closed = new Promise<{ code: number; reason: string }>((res) =>
            ws.once('close', (code, reason) => res({ code, reason: reason.toString() })),
          );
          ws.once('open', () => resolve({ ws, closed }));
          ws.once('error', reject);
        }),
    ),
  );
  t.teardown(() => clients.forEach((c) => c.ws.terminate()));
  const echoed = await new Promise<string>((resolve) => {
    clients[0].ws.once('message', (d) => resolve(d.toString()));
    clients[0].ws.send('ping through the router');
    setTimeout(() => resolve('(no echo within 3 s)'), 3000);
  });
  t.equal(echoed, 'ping through the router', 'the WebSocket relays before the drain');

  const signalledAt = Date.now();
  router.signal('SIGTERM');
  for (const c of clients) {
    const { code } = await c.closed;
    t.equal(code, 1001, 'closed with 1001 Going Away');
  }
  t.same(await router.exited, { code: 0, signal: null }, 'router exits 0');
  t.ok(Date.now() - signalledAt < 4000, 'without waiting out --drain-timeout (nothing left in flight)');
  t.notMatch(router.log(), /drain timed out/);
});
