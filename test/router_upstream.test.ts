// The router towards its apps, end to end: a real `skiff router` process, real
// nats-server, real sockets. Load balancing (round-robin, least-connection,
// per route, from the config store), retries and the failure cool-down,
// keep-alive pools against apps that close sockets, timeouts, the connection
// limit, invalid app responses and clients that leave early.

import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import t from 'tap';
import { eventually, freePort, sleep, startNats, type NatsServer, type TeardownHost } from './harness';
import {
  busClient,
  registerRoute,
  startBackend,
  startRouter,
  unregisterRoute,
  type Backend,
  type RouterProcess,
} from './router_harness';

// ---------------------------------------------------------------------------
// Helpers local to this file.

interface Outcome {
  /** 0 when no response head arrived at all. */
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** True when the response ended cleanly (not cut off, no socket error). */
  complete: boolean;
  error?: string;
  ms: number;
}

interface SendOptions {
  port: number;
  host: string;
  path?: string;
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
  timeoutMs?: number;
}

/** One request on a fresh client connection; never rejects, bounded by timeoutMs (default 8 s). */
function send(opts: SendOptions): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    let status = 0;
    let headers: http.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    const finish = (complete: boolean, error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, headers, body: Buffer.concat(chunks).toString(), complete, error, ms: performance.now() - started });
    };
    const req = http.request(
      {
        host: '127.0.0.1',
        port: opts.port,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: { host: opts.host, ...opts.headers },
        agent: false,
      },
      (res) => {
        status = res.statusCode!;
        headers = res.headers;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => finish(!res.aborted && res.complete));
        res.on('aborted', () => finish(false, 'response aborted'));
        res.on('error', (e) => finish(false, `response error: ${e.message}`));
      },
    );
    const timer = setTimeout(() => {
      finish(false, `no complete response within ${opts.timeoutMs ?? 8000} ms`);
      req.destroy();
    }, opts.timeoutMs ?? 8000);
    req.on('error', (e) => finish(false, `request error: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    req.end(opts.body);
  });
}

function describe(o: Outcome): string {
  return `status=${o.status} complete=${o.complete} error=${o.error ?? '-'} router-error=${o.headers['x-cf-routererror'] ?? '-'} body=${JSON.stringify(o.body.slice(0, 120))} ms=${Math.round(o.ms)}`;
}

/** The last lines of the router's log, for assertion messages. */
function logTail(router: RouterProcess, lines = 8): string {
  return router.log().trim().split('\n').slice(-lines).join('\n');
}

async function varzNum(router: RouterProcess, field: string): Promise<number> {
  return Number((await router.varz())[field]);
}

/** A gate requests can wait on; open() releases all of them. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/** A port nothing listens on (taken from the kernel, then released). */
const deadPort = freePort;

interface RawRequest {
  head: string;
  body: Buffer;
}

interface RawServer {
  port: number;
  connections: number;
  requests: RawRequest[];
}

/**
 * A bare TCP "app" for responses node:http would never send: parses request
 * heads (and Content-Length bodies) and lets `respond` write raw bytes.
 * Every socket is destroyed at teardown.
 */
async function startRawServer(t: TeardownHost, respond: (socket: net.Socket, request: RawRequest) => void): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  const state: RawServer = { port: 0, connections: 0, requests: [] };
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    socket.on('data', (data) => {
      buffered = Buffer.concat([buffered, data]);
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buffered.subarray(0, end).toString('latin1');
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        const request = { head, body: Buffer.from(buffered.subarray(end + 4, end + 4 + length)) };
        buffered = buffered.subarray(end + 4 + length);
        state.requests.push(request);
        respond(socket, request);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as net.AddressInfo).port;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return state;
}

/** A node:http backend that answers `name`, holding requests to /slow for `slowMs`. */
function namedBackend(t: TeardownHost, name: string, slowMs = 1500): Promise<Backend> {
  return startBackend(t, (req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end(name), slowMs);
    else res.end(name);
  });
}

function count(outcomes: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) {
    const key = o.status === 200 && o.complete ? o.body : `status ${o.status}${o.error ? ` (${o.error})` : ''}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

async function sequential(n: number, opts: SendOptions): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (let i = 0; i < n; i++) out.push(await send(opts));
  return out;
}

interface LoadWhileBusy {
  /** Fast requests per route host, sent while backend A held the slow ones. */
  fast: Record<string, Outcome[]>;
  /** The slow requests' outcomes, once they finished. */
  slow: Outcome[];
  /** Whether every slow request was still in flight when the last fast one returned. */
  slowStillInFlight: boolean;
}

/**
 * Pins `slowCount` slow requests to instance 0 (backend A) with
 * X-Cf-App-Instance, waits until A holds them all, then sends `fastCount`
 * unpinned fast requests to each of `fastHosts` in turn.
 */
async function loadWhileBusy(
  router: RouterProcess,
  pinHost: string,
  appId: string,
  a: Backend,
  fastHosts: string[],
  slowCount = 3,
  fastCount = 10,
): Promise<LoadWhileBusy> {
  const slowBefore = a.requests.filter((r) => r.url === '/slow').length;
  let slowDone = false;
  const slow = Promise.all(
    Array.from({ length: slowCount }, () =>
      send({ port: router.port, host: pinHost, path: '/slow', headers: { 'x-cf-app-instance': `${appId}:0` } }),
    ),
  ).then((r) => {
    slowDone = true;
    return r;
  });
  await eventually(() => a.requests.filter((r) => r.url === '/slow').length === slowBefore + slowCount, 'backend A to hold the slow requests', 3000);
  const fast: Record<string, Outcome[]> = {};
  for (const host of fastHosts) fast[host] = await sequential(fastCount, { port: router.port, host, path: '/fast' });
  const slowStillInFlight = !slowDone;
  return { fast, slow: await slow, slowStillInFlight };
}

// ---------------------------------------------------------------------------

t.test('router towards its apps', async (t) => {
  // One nats-server for the file; the config-store test has its own (it writes the store).
  const nats = await startNats(t);

  t.test('round-robin: 300 requests over 3 backends, each gets 100 +- 10%', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);
    const backends = await Promise.all(['b0', 'b1', 'b2'].map((name) => namedBackend(t, name)));
    for (const b of backends) await registerRoute(nc, router, { port: b.port, uris: ['rr.upstream.test'] });
    const outcomes: Outcome[] = [];
    // Ten clients at a time, each request on its own connection.
    for (let i = 0; i < 30; i++) {
      outcomes.push(...(await Promise.all(Array.from({ length: 10 }, () => send({ port: router.port, host: 'rr.upstream.test' })))));
    }
    const counts = count(outcomes);
    t.equal(outcomes.filter((o) => o.status === 200 && o.complete).length, 300, `all 300 answered 200: ${JSON.stringify(counts)}`);
    for (const name of ['b0', 'b1', 'b2']) {
      const n = counts[name] ?? 0;
      t.ok(n >= 90 && n <= 110, `${name} got ${n} of 300 (want 90..110): ${JSON.stringify(counts)}`);
    }
  });

  t.test('least-connection: --lb least-connection sends new requests to the idle backend', async (t) => {
    const router = await startRouter(t, nats, { args: ['--lb', 'least-connection'] });
    const nc = await busClient(t, nats);
    const a = await namedBackend(t, 'A');
    const b = await namedBackend(t, 'B');
    await registerRoute(nc, router, { port: a.port, uris: ['lc.upstream.test'], app: 'lc-app', private_instance_index: '0' });
    await registerRoute(nc, router, { port: b.port, uris: ['lc.upstream.test'], app: 'lc-app', private_instance_index: '1' });
    t.equal((await router.varz()).lb_algorithm, 'least-connection', '/varz shows the flag');

    const run = await loadWhileBusy(router, 'lc.upstream.test', 'lc-app', a, ['lc.upstream.test']);
    t.ok(run.slowStillInFlight, 'the fast requests all ran while A held 3 slow ones');
    t.same(count(run.fast['lc.upstream.test']), { B: 10 }, 'every fast request went to the idle backend B');
    t.same(count(run.slow), { A: 3 }, 'the slow requests completed on A');
  });

  t.test('least-connection per route (register options) on a round-robin router; other routes stay round-robin', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);
    const a = await namedBackend(t, 'A');
    const b = await namedBackend(t, 'B');
    const lc = { loadbalancing: 'least-connection' };
    await registerRoute(nc, router, { port: a.port, uris: ['lcroute.upstream.test'], app: 'pr-app', private_instance_index: '0', options: lc });
    await registerRoute(nc, router, { port: b.port, uris: ['lcroute.upstream.test'], app: 'pr-app', private_instance_index: '1', options: lc });
    await registerRoute(nc, router, { port: a.port, uris: ['rrroute.upstream.test'] });
    await registerRoute(nc, router, { port: b.port, uris: ['rrroute.upstream.test'] });
    t.equal((await router.varz()).lb_algorithm, 'round-robin', 'router default stays round-robin');

    const run = await loadWhileBusy(router, 'lcroute.upstream.test', 'pr-app', a, ['lcroute.upstream.test', 'rrroute.upstream.test']);
    t.ok(run.slowStillInFlight, 'the fast requests all ran while A held 3 slow ones');
    t.same(count(run.fast['lcroute.upstream.test']), { B: 10 }, 'least-connection route: every fast request went to the idle backend');
    const rr = count(run.fast['rrroute.upstream.test']);
    t.equal((rr.A ?? 0) + (rr.B ?? 0), 10, `round-robin route: all 200 (${JSON.stringify(rr)})`);
    t.ok((rr.A ?? 0) >= 4 && (rr.A ?? 0) <= 6, `round-robin route still alternates, busy A got ${rr.A ?? 0} of 10 (${JSON.stringify(rr)})`);
    t.same(count(run.slow), { A: 3 });
  });

  t.test('config store: router.lb_algorithm applies live unless --lb is given', async (t) => {
    const ownNats: NatsServer = await startNats(t);
    const nc = await busClient(t, ownNats);
    const router = await startRouter(t, ownNats);
    t.equal((await router.varz()).lb_algorithm, 'round-robin', 'default before the store says otherwise');
    const a = await namedBackend(t, 'A');
    const b = await namedBackend(t, 'B');
    const regA = { port: a.port, uris: ['store.upstream.test'], app: 'st-app', private_instance_index: '0' };
    const regB = { port: b.port, uris: ['store.upstream.test'], app: 'st-app', private_instance_index: '1' };
    await registerRoute(nc, router, regA);
    await registerRoute(nc, router, regB);

    const kv = await nc.jetstream().views.kv('skiff_config');
    await kv.put('router.lb_algorithm', JSON.stringify('least-connection'));
    const changedAt = Date.now();
    await eventually(async () => (await router.varz()).lb_algorithm === 'least-connection', '/varz lb_algorithm least-connection', 5000);
    t.pass(`/varz lb_algorithm became least-connection after ${Date.now() - changedAt} ms`);
    const run = await loadWhileBusy(router, 'store.upstream.test', 'st-app', a, ['store.upstream.test']);
    t.ok(run.slowStillInFlight, 'fast requests ran while A was busy');
    t.same(count(run.fast['store.upstream.test']), { B: 10 }, 'behaviour follows the store: all fast requests to the idle backend');

    // The flag wins, at start and on live changes.
    const flagged = await startRouter(t, ownNats, { args: ['--lb', 'round-robin'] });
    await registerRoute(nc, flagged, regA);
    await registerRoute(nc, flagged, regB);
    t.equal((await flagged.varz()).lb_algorithm, 'round-robin', 'with --lb round-robin the stored value is ignored at start');
    // A live change: the unflagged router is the witness that it was delivered.
    await kv.delete('router.lb_algorithm');
    await eventually(async () => (await router.varz()).lb_algorithm === 'round-robin', 'deletion to reach the unflagged router', 5000);
    await kv.put('router.lb_algorithm', JSON.stringify('least-connection'));
    await eventually(async () => (await router.varz()).lb_algorithm === 'least-connection', 'new value to reach the unflagged router', 5000);
    await sleep(300);
    t.equal((await flagged.varz()).lb_algorithm, 'round-robin', 'with --lb round-robin a live store change is ignored');
    const flaggedRun = await loadWhileBusy(flagged, 'store.upstream.test', 'st-app', a, ['store.upstream.test']);
    const rr = count(flaggedRun.fast['store.upstream.test']);
    t.ok(flaggedRun.slowStillInFlight, 'fast requests ran while A was busy');
    t.ok((rr.A ?? 0) >= 4 && (rr.A ?? 0) <= 6 && (rr.A ?? 0) + (rr.B ?? 0) === 10, `flagged router keeps round-robin: busy A got ${rr.A ?? 0} of 10 (${JSON.stringify(rr)})`);
  });

  t.test('retries: a refused endpoint is retried elsewhere and then cooled down; all dead -> 502 after at most 3 attempts', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);
    const live = await namedBackend(t, 'live');
    await registerRoute(nc, router, { port: live.port, uris: ['retry.upstream.test'] });
    await registerRoute(nc, router, { port: await deadPort(), uris: ['retry.upstream.test'] });

    const retries0 = await varzNum(router, 'retries');
    const outcomes = await sequential(20, { port: router.port, host: 'retry.upstream.test' });
    t.same(count(outcomes), { live: 20 }, 'all 20 GETs answered 200 by the live backend');
    const retries = (await varzNum(router, 'retries')) - retries0;
    t.ok(retries >= 1, `the refused endpoint was tried and the request retried (varz retries +${retries})`);
    t.ok(retries <= 2, `after its first failure the dead endpoint is cooled down, not retried on every request (varz retries +${retries} for 20 requests)`);
    t.equal(live.requests.length, 20, 'the live backend saw each request once');

    // Every endpoint dead: 4 of them, so a cap of 3 attempts is visible.
    for (let i = 0; i < 4; i++) await registerRoute(nc, router, { port: await deadPort(), uris: ['alldead.upstream.test'] });
    for (let i = 0; i < 3; i++) {
      const before = await varzNum(router, 'retries');
      const o = await send({ port: router.port, host: 'alldead.upstream.test' });
      const delta = (await varzNum(router, 'retries')) - before;
      t.equal(o.status, 502, `request ${i}: 502 when every endpoint refuses (${describe(o)})`);
      t.equal(o.headers['x-cf-routererror'], 'endpoint_failure', `request ${i}: X-Cf-Routererror endpoint_failure`);
      t.ok(o.ms < 2000, `request ${i}: answered in ${Math.round(o.ms)} ms`);
      if (i === 0) t.equal(delta, 2, `first request: 3 attempts on distinct endpoints (varz retries +${delta})`);
      else t.ok(delta <= 2, `request ${i}: at most 3 attempts (varz retries +${delta})`);
    }
  });

  t.test('a POST that reached the app is never retried; idempotent and refused requests are', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);

    // Both backends read the POST body, record it, then drop the connection.
    const seen: string[][] = [[], []];
    const droppers = await Promise.all(
      [0, 1].map((i) =>
        startBackend(t, (req) => {
          let body = '';
          req.on('data', (c) => (body += c));
          req.on('end', () => {
            seen[i].push(body);
            req.socket.destroy();
          });
        }),
      ),
    );
    for (const d of droppers) await registerRoute(nc, router, { port: d.port, uris: ['post.upstream.test'] });
    const retries0 = await varzNum(router, 'retries');
    for (let i = 0; i < 4; i++) {
      const o = await send({ port: router.port, host: 'post.upstream.test', method: 'POST', body: `order-${i}` });
      t.equal(o.status, 502, `POST ${i}: 502 (${describe(o)})`);
      t.equal(o.headers['x-cf-routererror'], 'endpoint_failure', `POST ${i}: endpoint_failure`);
      const copies = seen[0].filter((b) => b === `order-${i}`).length + seen[1].filter((b) => b === `order-${i}`).length;
      t.equal(copies, 1, `POST ${i}: exactly one backend received it (seen: ${JSON.stringify(seen)})`);
    }
    t.equal((await varzNum(router, 'retries')) - retries0, 0, 'no retries counted for POSTs that reached an app');

    // GET: A drops the connection without answering, B answers.
    const a = await startBackend(t, (req) => req.socket.destroy());
    const b = await namedBackend(t, 'B');
    await registerRoute(nc, router, { port: a.port, uris: ['getclose.upstream.test'] });
    await registerRoute(nc, router, { port: b.port, uris: ['getclose.upstream.test'] });
    const gets = await sequential(6, { port: router.port, host: 'getclose.upstream.test' });
    t.same(count(gets), { B: 6 }, 'every GET answered 200 by B');
    t.ok(a.requests.length >= 1, `A was tried (${a.requests.length} times) and its dropped GETs retried on B`);
    t.equal(b.requests.length, 6, 'B answered each GET once');

    // POST towards a refused endpoint: nothing reached an app, so it is retried.
    const echo = await startBackend(t, (req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => res.end(`got ${body}`));
    });
    await registerRoute(nc, router, { port: echo.port, uris: ['postrefused.upstream.test'] });
    await registerRoute(nc, router, { port: await deadPort(), uris: ['postrefused.upstream.test'] });
    const retries1 = await varzNum(router, 'retries');
    for (let i = 0; i < 4; i++) {
      const o = await send({ port: router.port, host: 'postrefused.upstream.test', method: 'POST', body: `item-${i}` });
      t.equal(o.status, 200, `POST ${i} with one endpoint refusing: 200 (${describe(o)})`);
      t.equal(o.body, `got item-${i}`, `POST ${i}: body arrived intact`);
    }
    t.ok((await varzNum(router, 'retries')) - retries1 >= 1, 'the POST that met the refused endpoint was retried');
    t.equal(echo.requests.length, 4, 'the live backend received each POST once');
  });

  t.test('keep-alive towards apps: reuse, apps closing idle sockets, apps closing without Connection: close', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);

    // Reuse.
    let connections = 0;
    const counted = await startBackend(t, (_req, res) => res.end('k'), (server) => server.on('connection', () => connections++));
    await registerRoute(nc, router, { port: counted.port, uris: ['reuse.upstream.test'] });
    const reuse = await sequential(50, { port: router.port, host: 'reuse.upstream.test' });
    t.same(count(reuse), { k: 50 }, '50 sequential GETs answered');
    t.ok(connections <= 5, `the router reused its backend connections: ${connections} TCP connections for 50 requests`);

    // Raw app that closes after every response without saying Connection: close.
    const closer = await startRawServer(t, (socket, request) => {
      const body = `${request.head.split(' ')[0]} ${request.body.length}`;
      socket.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    });
    await registerRoute(nc, router, { port: closer.port, uris: ['closer.upstream.test'] });
    const closerGets = await sequential(10, { port: router.port, host: 'closer.upstream.test' });
    t.same(count(closerGets), { 'GET 0': 10 }, 'back-to-back GETs to an app closing after each response: all 200');
    const closerPosts: Outcome[] = [];
    for (let i = 0; i < 5; i++) {
      await sleep(200);
      closerPosts.push(await send({ port: router.port, host: 'closer.upstream.test', method: 'POST', body: 'x'.repeat(10 + i) }));
    }
    t.same(
      closerPosts.map((o) => (o.status === 200 ? o.body : describe(o))),
      ['POST 10', 'POST 11', 'POST 12', 'POST 13', 'POST 14'],
      'POSTs spaced 200 ms apart to that app: all 200, each received once',
    );

    // node:http app that closes sockets idle for 1 s, below the router's idle
    // timeout (4 s). keepAliveTimeout = 1000 alone is not that: Node 20.20 adds
    // a fixed 1 s buffer (the socket closes after 2 s), so the app also closes
    // idle sockets itself, exactly 1 s after each response.
    let shortConnections = 0;
    let closedIdle = 0;
    const idleTimers = new WeakMap<net.Socket, NodeJS.Timeout>();
    const short = await startBackend(
      t,
      (req, res) => {
        clearTimeout(idleTimers.get(req.socket));
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => res.end(`${req.method} ${body}`));
        res.on('finish', () => {
          const socket = req.socket;
          idleTimers.set(
            socket,
            setTimeout(() => {
              if (socket.destroyed) return;
              closedIdle++;
              socket.destroy();
            }, 1000),
          );
        });
      },
      (server) => {
        server.keepAliveTimeout = 1000;
        server.on('connection', () => shortConnections++);
      },
    );
    await registerRoute(nc, router, { port: short.port, uris: ['short.upstream.test'] });
    const gaps = [1200, 1600, 1300, 1500, 1400, 1250, 1550, 1350];
    const spaced: string[] = [];
    for (let i = 0; i < gaps.length; i++) {
      const method = i % 2 === 0 ? 'GET' : 'POST';
      const o = await send({ port: router.port, host: 'short.upstream.test', method, body: method === 'POST' ? `p${i}` : undefined });
      spaced.push(o.status === 200 && o.complete ? o.body : describe(o));
      await sleep(gaps[i]);
    }
    t.same(
      spaced,
      gaps.map((_, i) => (i % 2 === 0 ? 'GET ' : `POST p${i}`)),
      `8 requests spaced 1.2-1.6 s to an app closing idle sockets after 1 s: all 200 (app saw ${shortConnections} connections)`,
    );
    t.ok(closedIdle >= 7, `the app did close the router's idle socket between requests (${closedIdle} times)`);
  });

  t.test('timeouts: --backend-timeout and --connect-timeout', async (t) => {
    const router = await startRouter(t, nats, { args: ['--backend-timeout', '1', '--connect-timeout', '1'] });
    const nc = await busClient(t, nats);
    const silent = await startBackend(t, () => {});
    const halfSecond = await startBackend(t, (_req, res) => setTimeout(() => res.end('late but fine'), 500));
    await registerRoute(nc, router, { port: silent.port, uris: ['silent.upstream.test'] });
    await registerRoute(nc, router, { port: halfSecond.port, uris: ['halfsecond.upstream.test'] });

    const timedOut = await send({ port: router.port, host: 'silent.upstream.test' });
    t.equal(timedOut.status, 504, `a backend that never answers: 504 (${describe(timedOut)})`);
    t.equal(timedOut.headers['x-cf-routererror'], 'endpoint_failure', 'X-Cf-Routererror endpoint_failure');
    t.ok(timedOut.ms >= 800 && timedOut.ms <= 3000, `after ~1 s (${Math.round(timedOut.ms)} ms)`);
    t.equal(silent.requests.length, 1, 'the timed-out request was not sent again');

    const fine = await send({ port: router.port, host: 'halfsecond.upstream.test' });
    t.equal(fine.status, 200, `a backend answering in 0.5 s is fine (${describe(fine)})`);
    t.equal(fine.body, 'late but fine');

    // Connect timeout. A listener with backlog 0 that never accepts: once its
    // accept queue holds one connection, Linux drops further SYNs, so
    // connects to it hang in SYN_SENT.
    const python: ChildProcess = spawn(
      'python3',
      ['-c', "import socket,sys\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()"],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const fillers: net.Socket[] = [];
    t.teardown(async () => {
      for (const s of fillers) s.destroy();
      if (python.exitCode === null && python.signalCode === null) {
        const exited = new Promise((resolve) => python.once('exit', resolve));
        process.kill(python.pid!, 'SIGKILL');
        await exited;
      }
    });
    const hangPort = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('python3 listener did not report its port within 5 s')), 5000);
      python.once('error', reject);
      python.stdout!.once('data', (d) => {
        clearTimeout(timer);
        resolve(Number(String(d).trim()));
      });
    });
    let connected = 0;
    for (let i = 0; i < 3; i++) {
      const s = net.connect(hangPort, '127.0.0.1');
      s.on('connect', () => connected++);
      s.on('error', () => {});
      fillers.push(s);
    }
    await eventually(() => connected >= 1, 'a filler connection to sit in the accept queue', 2000);
    const probe = net.connect(hangPort, '127.0.0.1');
    probe.on('error', () => {});
    fillers.push(probe);
    await sleep(500);
    const skip = probe.connecting
      ? false
      : 'this kernel completed a TCP handshake to a listener with a full accept queue, so a connect cannot be made to hang';

    t.test('--connect-timeout 1: an endpoint that never completes the TCP handshake -> 502 after ~1 s', { skip }, async (t) => {
      await registerRoute(nc, router, { port: hangPort, uris: ['synhang.upstream.test'] });
      const o = await send({ port: router.port, host: 'synhang.upstream.test' });
      t.equal(o.status, 502, `connect never completes: 502 (${describe(o)})`);
      t.equal(o.headers['x-cf-routererror'], 'endpoint_failure', 'X-Cf-Routererror endpoint_failure');
      t.ok(o.ms >= 800 && o.ms <= 3000, `after ~1 s (${Math.round(o.ms)} ms)`);
      t.match(router.log(), /connect timeout/, 'the router logs the connect timeout');
    });
  });

  t.test('connection limit: --max-conns-per-backend 2', async (t) => {
    const router = await startRouter(t, nats, { args: ['--max-conns-per-backend', '2'] });
    const nc = await busClient(t, nats);
    const hold = gate();
    const a = await startBackend(t, (req, res) => {
      if (req.url === '/hold') {
        const timer = setTimeout(() => res.end('A'), 3000); // bound, should the test never release
        void hold.wait.then(() => {
          clearTimeout(timer);
          res.end('A');
        });
      } else res.end('A');
    });
    const b = await namedBackend(t, 'B');
    const regA = { port: a.port, uris: ['limit.upstream.test'] };
    const regB = { port: b.port, uris: ['limit.upstream.test'] };
    await registerRoute(nc, router, regA);

    const held = [0, 1].map(() => send({ port: router.port, host: 'limit.upstream.test', path: '/hold' }));
    await eventually(() => a.requests.filter((r) => r.url === '/hold').length === 2, 'A to hold 2 requests', 3000);
    const rejected = await send({ port: router.port, host: 'limit.upstream.test' });
    t.equal(rejected.status, 503, `3rd concurrent request: 503 (${describe(rejected)})`);
    t.equal(rejected.headers['x-cf-routererror'], 'Connection Limit Reached', 'X-Cf-Routererror Connection Limit Reached');
    t.ok((await varzNum(router, 'connection_limit_rejections')) >= 1, '/varz counts the rejection');

    await registerRoute(nc, router, regB);
    const overflow = await sequential(4, { port: router.port, host: 'limit.upstream.test' });
    t.same(count(overflow), { B: 4 }, 'with a second endpoint the extra requests go there');

    hold.open();
    t.same(count(await Promise.all(held)), { A: 2 }, 'the held requests complete');
    await unregisterRoute(nc, router, regB);
    await eventually(async () => ((await router.routes())['limit.upstream.test'] ?? [])[0]?.in_flight === 0, 'A in_flight back to 0', 3000);
    const after = await Promise.all([0, 1].map(() => send({ port: router.port, host: 'limit.upstream.test' })));
    const more = await send({ port: router.port, host: 'limit.upstream.test' });
    t.same(count([...after, more]), { A: 3 }, 'after the held requests finished, A accepts requests again');
  });

  t.test('invalid app responses: 502, and the route keeps working', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);
    const good = await namedBackend(t, 'good');
    const kinds: Array<[string, string]> = [
      ['garbage status line', 'HTTP/1.1 2x0 Fine\r\nContent-Length: 2\r\n\r\nok'],
      ['not HTTP at all', 'SSH-2.0-OpenSSH_9.6\r\n\r\n'],
      ['bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
      ['Content-Length and Transfer-Encoding both', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
    ];
    for (const [i, [kind, response]] of kinds.entries()) {
      // The bad app answers and keeps the connection open: only parsing can reveal the problem.
      const bad = await startRawServer(t, (socket) => socket.write(response));
      const host = `bad${i}.upstream.test`;
      const app = `bad-app-${i}`;
      await registerRoute(nc, router, { port: bad.port, uris: [host], app, private_instance_index: '0' });
      await registerRoute(nc, router, { port: good.port, uris: [host], app, private_instance_index: '1' });
      const goodBefore = good.requests.length;

      const o = await send({ port: router.port, host, headers: { 'x-cf-app-instance': `${app}:0` }, timeoutMs: 5000 });
      t.equal(o.status, 502, `${kind}: client gets 502 (${describe(o)})`);
      t.equal(o.headers['x-cf-routererror'], 'endpoint_failure', `${kind}: X-Cf-Routererror endpoint_failure`);
      t.equal(bad.requests.length, 1, `${kind}: the bad app was asked once (no retry of a request that reached it)`);
      const next = await send({ port: router.port, host, headers: { 'x-cf-app-instance': `${app}:1` } });
      t.equal(next.status === 200 && next.complete ? next.body : describe(next), 'good', `${kind}: the next request, to the good endpoint, works`);
      const unpinned = await sequential(4, { port: router.port, host, path: '/again', timeoutMs: 5000 });
      const toGood = unpinned.filter((u) => u.status === 200 && u.complete && u.body === 'good').length;
      t.equal(toGood, good.requests.length - goodBefore - 1, `${kind}: every unpinned request the good endpoint received came back 200`);
      t.ok(toGood >= 1, `${kind}: the route keeps serving (${JSON.stringify(count(unpinned))})`);
    }

    // A bad chunk after part of the body went out: the status is already on
    // the wire, so the client must see a cut-off response, never a complete one.
    const late = await startRawServer(t, (socket) => {
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
      setTimeout(() => socket.write('zz\r\nworld\r\n0\r\n\r\n'), 300);
    });
    await registerRoute(nc, router, { port: late.port, uris: ['latebad.upstream.test'], app: 'late-app', private_instance_index: '0' });
    await registerRoute(nc, router, { port: good.port, uris: ['latebad.upstream.test'], app: 'late-app', private_instance_index: '1' });
    const cut = await send({ port: router.port, host: 'latebad.upstream.test', headers: { 'x-cf-app-instance': 'late-app:0' }, timeoutMs: 5000 });
    t.equal(cut.status, 200, `bad chunk after the body began: the app's status was forwarded (${describe(cut)})`);
    t.notOk(cut.complete, 'bad chunk after the body began: the client sees the response cut off');
    t.notMatch(cut.body, /world/, 'nothing after the bad chunk reaches the client');
    const afterCut = await send({ port: router.port, host: 'latebad.upstream.test', headers: { 'x-cf-app-instance': 'late-app:1' } });
    t.equal(afterCut.status === 200 && afterCut.complete ? afterCut.body : describe(afterCut), 'good', 'the next request, to the good endpoint, works');
  });

  t.test('a client that aborts does not leave its backend connection counted', async (t) => {
    const router = await startRouter(t, nats, { args: ['--max-conns-per-backend', '1'] });
    const nc = await busClient(t, nats);
    const upstreamClosed: string[] = [];
    const backend = await startBackend(t, (req, res) => {
      if (req.url === '/hold' || req.url === '/upload') {
        req.resume();
        req.socket.once('close', () => upstreamClosed.push(req.url!));
        return; // never answers
      }
      res.end('ok');
    });
    await registerRoute(nc, router, { port: backend.port, uris: ['abort.upstream.test'] });
    const aborts0 = await varzNum(router, 'client_aborts');

    const rawClient = async (request: string, until: () => boolean, what: string) => {
      const socket = net.connect(router.port, '127.0.0.1');
      socket.on('error', () => {});
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      socket.write(request);
      try {
        await eventually(until, what, 3000);
      } finally {
        socket.destroy();
      }
    };

    // 1. Gone while waiting for the response.
    await rawClient('GET /hold HTTP/1.1\r\nHost: abort.upstream.test\r\n\r\n', () => backend.requests.length === 1, 'the backend to get /hold');
    await eventually(async () => (await varzNum(router, 'client_aborts')) === aborts0 + 1, '/varz client_aborts +1', 3000);
    t.pass('/varz client_aborts counted the client that left while waiting');
    await eventually(() => upstreamClosed.includes('/hold'), 'the router to close the backend connection of the aborted request', 3000);
    const afterFirst = await send({ port: router.port, host: 'abort.upstream.test' });
    t.equal(afterFirst.status, 200, `with a limit of 1, the next request still gets through (${describe(afterFirst)})`);

    // 2. Gone in the middle of sending its request body.
    await rawClient(
      'POST /upload HTTP/1.1\r\nHost: abort.upstream.test\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(4000),
      () => backend.requests.some((r) => r.url === '/upload'),
      'the backend to get the head of /upload',
    );
    await eventually(async () => (await varzNum(router, 'client_aborts')) === aborts0 + 2, '/varz client_aborts +2', 3000);
    t.pass('/varz client_aborts counted the client that left mid-upload');
    await eventually(() => upstreamClosed.includes('/upload'), 'the router to close the backend connection of the aborted upload', 3000);
    const later = await sequential(3, { port: router.port, host: 'abort.upstream.test' });
    t.same(count(later), { ok: 3 }, 'later requests through the limit-1 router all succeed (in-flight count released)');
    const routes = await router.routes();
    t.equal(routes['abort.upstream.test']?.[0]?.in_flight, 0, '/routes shows in_flight 0');
  });
});
