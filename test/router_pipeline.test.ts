// Pipelining towards apps, end to end: a real `skiff router` process, real
// nats-server, real sockets, and apps that see what reached them per TCP
// connection. GET/HEAD/OPTIONS requests without a body that arrive for one
// app instance together share one app connection; everything else keeps a
// connection to itself; requests a connection cannot answer are sent again.

import * as http from 'node:http';
import * as net from 'node:net';
import t from 'tap';
import uWS = require('uWebSockets.js');
import { eventually, sleep, startNats, type TeardownHost } from './harness';
import { busClient, registerRoute, startRouter, type RouterProcess } from './router_harness';

// ---------------------------------------------------------------------------
// Clients.

interface Result {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  error?: string;
  ms: number;
}

interface Call {
  method: string;
  path: string;
  body?: Buffer;
}

/**
 * Runs `calls` through the router on `connections` keep-alive client
 * connections at once, each request as soon as a connection is free. Never
 * rejects: a failed request is a Result with `error`.
 */
async function runConcurrently(port: number, host: string, calls: Call[], connections: number): Promise<Result[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const results: Result[] = new Array(calls.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < calls.length) {
      const i = next++;
      results[i] = await one(port, host, calls[i], agent);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  agent.destroy();
  return results;
}

function one(port: number, host: string, call: Call, agent: http.Agent | false = false, timeoutMs = 15_000): Promise<Result> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: Omit<Result, 'ms'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, ms: performance.now() - started });
    };
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: call.method,
        path: call.path,
        agent,
        headers: { host, ...(call.body ? { 'content-length': String(call.body.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          finish({
            status: res.statusCode!,
            headers: res.headers,
            body: Buffer.concat(chunks),
            ...(res.complete ? {} : { error: 'response cut off' }),
          }),
        );
        res.on('error', (e) => finish({ status: res.statusCode!, headers: res.headers, body: Buffer.alloc(0), error: e.message }));
      },
    );
    const timer = setTimeout(() => {
      finish({ status: 0, headers: {}, body: Buffer.alloc(0), error: `no response within ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on('error', (e) => finish({ status: 0, headers: {}, body: Buffer.alloc(0), error: (e as NodeJS.ErrnoException).code ?? e.message }));
    req.end(call.body);
  });
}

/**
 * Opens `count` client connections first, then writes one request on each in
 * one synchronous loop, so that the router reads them in one event-loop turn.
 */
async function burst(port: number, host: string, paths: string[], afterWrite?: (sockets: net.Socket[]) => void, timeoutMs = 15_000): Promise<Result[]> {
  const sockets = await Promise.all(
    paths.map(
      () =>
        new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1', () => resolve(s));
          s.on('error', reject);
        }),
    ),
  );
  const started = performance.now();
  const results = sockets.map(
    (s) =>
      new Promise<Result>((resolve) => {
        let raw = Buffer.alloc(0);
        const timer = setTimeout(() => done('timeout'), timeoutMs);
        const done = (error?: string): void => {
          clearTimeout(timer);
          s.destroy();
          const headEnd = raw.indexOf('\r\n\r\n');
          const head = headEnd === -1 ? '' : raw.subarray(0, headEnd).toString('latin1');
          const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
          const headers: http.IncomingHttpHeaders = {};
          for (const line of head.split('\r\n').slice(1)) {
            const colon = line.indexOf(':');
            headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
          }
          const body = headEnd === -1 ? Buffer.alloc(0) : raw.subarray(headEnd + 4);
          resolve({ status, headers, body, ms: performance.now() - started, ...(error ? { error } : {}) });
        };
        s.on('data', (d: Buffer) => {
          raw = Buffer.concat([raw, d]);
          const headEnd = raw.indexOf('\r\n\r\n');
          if (headEnd === -1) return;
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(raw.subarray(0, headEnd).toString('latin1'))?.[1] ?? -1);
          if (length >= 0 && raw.length >= headEnd + 4 + length) done();
        });
        s.on('close', () => done('closed'));
        s.on('error', () => {});
      }),
  );
  paths.forEach((p, i) => sockets[i].write(`GET ${p} HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
  afterWrite?.(sockets);
  return Promise.all(results);
}

function summary(results: Result[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    const key = r.error ? `error ${r.error}` : `status ${r.status}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

async function pipelining(router: RouterProcess): Promise<{ pipelined_requests: number; replays: number; refusals: number; stalls: number }> {
  return (await router.varz()).pipelining;
}

// ---------------------------------------------------------------------------
// Apps that report what reached them, connection by connection.

/** Deterministic bytes for request `id`: a body differs from every other one. */
function bodyFor(id: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = (id * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

interface Seen {
  /** Per app connection, the requests in arrival order, as "METHOD path". */
  connections: string[][];
  /** Largest number of requests outstanding at once on one connection. */
  maxOutstanding: number;
  /** Requests that arrived on a connection while a POST was outstanding there, or POSTs that arrived behind another request. */
  postOverlaps: string[];
  /** Every request that arrived while others were outstanding on its connection, with those others. */
  overlaps: Array<{ arrived: string; outstanding: string[] }>;
}

/**
 * A node:http app. Node answers pipelined requests in order, each handler
 * running as its request is parsed, so `outstanding` shows how many requests
 * the router had on one connection at once.
 */
async function trackingApp(t: TeardownHost, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ port: number; seen: Seen }> {
  const seen: Seen = { connections: [], maxOutstanding: 0, postOverlaps: [], overlaps: [] };
  const perSocket = new WeakMap<net.Socket, { log: string[]; outstanding: string[] }>();
  const server = http.createServer((req, res) => {
    let state = perSocket.get(req.socket);
    if (state === undefined) {
      state = { log: [], outstanding: [] };
      perSocket.set(req.socket, state);
      seen.connections.push(state.log);
    }
    const what = `${req.method} ${req.url}`;
    state.log.push(what);
    if (state.outstanding.length > 0) seen.overlaps.push({ arrived: what, outstanding: [...state.outstanding] });
    if (state.outstanding.length > 0 && (req.method === 'POST' || state.outstanding.some((o) => o.startsWith('POST ')))) {
      seen.postOverlaps.push(`${what} while ${state.outstanding.join(', ')}`);
    }
    state.outstanding.push(what);
    seen.maxOutstanding = Math.max(seen.maxOutstanding, state.outstanding.length);
    const s = state;
    res.on('finish', () => s.outstanding.splice(s.outstanding.indexOf(what), 1));
    res.on('close', () => {
      const i = s.outstanding.indexOf(what);
      if (i !== -1) s.outstanding.splice(i, 1);
    });
    handler(req, res);
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as net.AddressInfo).port, seen };
}

/** A raw TCP app: `respond` sees each request head (no bodies) with its connection's request count. */
async function rawApp(
  t: TeardownHost,
  respond: (socket: net.Socket, head: string, nth: number) => void,
): Promise<{ port: number; connections: () => number; received: string[] }> {
  const sockets = new Set<net.Socket>();
  const received: string[] = [];
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    let nth = 0;
    socket.on('data', (d) => {
      buffered += d.toString('latin1');
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        received.push(head.split(' ')[1]);
        respond(socket, head, nth++);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections, received };
}

// ---------------------------------------------------------------------------

t.test('pipelining towards apps', async (t) => {
  const nats = await startNats(t, { jetstream: false });

  t.test('3000 requests on 100 client connections: every response reaches its own client, byte for byte', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);
    // Sizes from nothing to several reads, bodies with and without a length,
    // interim responses, HEAD, 204 and 304: every way a response can end
    // inside a read full of other responses.
    const app = await trackingApp(t, (req, res) => {
      const url = new URL(req.url!, 'http://x');
      const id = Number(url.searchParams.get('id'));
      const size = Number(url.searchParams.get('size'));
      const kind = url.searchParams.get('kind');
      res.setHeader('x-id', String(id));
      const send = (): void => {
        const body = bodyFor(id, size);
        if (kind === 'chunked') {
          res.write(body.subarray(0, size >> 1));
          res.end(body.subarray(size >> 1));
        } else if (kind === 'hints') {
          res.writeEarlyHints({ link: '</style.css>; rel=preload' });
          res.setHeader('content-length', size);
          // As a string: Node 20 puts the head of a queued response before
          // its early hints when the body is a Buffer (the app's own bug).
          res.end(body.toString('latin1'), 'latin1');
        } else if (kind === '204') {
          res.statusCode = 204;
          res.end();
        } else if (kind === '304') {
          res.statusCode = 304;
          res.end();
        } else {
          res.setHeader('content-length', size);
          res.end(req.method === 'HEAD' ? undefined : body);
        }
      };
      // Some answers wait a little, so the app does not simply answer in arrival order of time.
      if (id % 7 === 0) setTimeout(send, id % 5);
      else send();
    });
    await registerRoute(nc, router, { port: app.port, uris: ['many.pipeline.test'] });

    const kinds = ['plain', 'plain', 'plain', 'chunked', 'hints', 'head', '204', '304', 'options'];
    const calls: Call[] = [];
    const expected: Array<{ status: number; body: Buffer }> = [];
    for (let id = 1; id <= 3000; id++) {
      const kind = kinds[id % kinds.length];
      const size = id % 97 === 0 ? 70_000 + id : id % 13 === 0 ? 9000 + id : (id * 37) % 1500;
      const method = kind === 'head' ? 'HEAD' : kind === 'options' ? 'OPTIONS' : 'GET';
      calls.push({ method, path: `/item?id=${id}&size=${size}&kind=${kind}` });
      const status = kind === '204' ? 204 : kind === '304' ? 304 : 200;
      expected.push({ status, body: method === 'HEAD' || status !== 200 ? Buffer.alloc(0) : bodyFor(id, size) });
    }
    const results = await runConcurrently(router.port, 'many.pipeline.test', calls, 100);

    const wrong: string[] = [];
    results.forEach((r, i) => {
      const id = i + 1;
      const e = expected[i];
      if (r.error || r.status !== e.status || r.headers['x-id'] !== String(id) || !r.body.equals(e.body)) {
        wrong.push(`#${id} ${calls[i].method} ${calls[i].path}: status ${r.status} x-id ${r.headers['x-id']} body ${r.body.length} B${r.error ? ` (${r.error})` : ''}`);
      }
    });
    t.same(wrong.slice(0, 10), [], `all 3000 responses right, each to its own client (${wrong.length} wrong; ${JSON.stringify(summary(results))})`);
    const p = await pipelining(router);
    t.ok(p.pipelined_requests >= 300, `requests were pipelined: ${p.pipelined_requests} shared a connection with another`);
    t.ok(app.seen.maxOutstanding >= 2, `the app saw up to ${app.seen.maxOutstanding} requests outstanding on one connection`);
    t.equal(p.refusals, 0, 'node:http answers pipelined requests: never taken for an app that refuses them');
    // Sending again is for requests stuck behind a response for 500 ms (a
    // client of the same busy test process reading slowly can cause that).
    t.ok(p.replays === 0 || p.stalls > 0, `nothing sent twice but behind a stall (replays ${p.replays}, stalls ${p.stalls})`);
    t.ok(app.seen.connections.length < 100, `${app.seen.connections.length} app connections for 100 clients`);
    const varz = await router.varz();
    t.equal(varz.bad_gateways, 0, 'no 502');
    await eventually(async () => ((await router.routes())['many.pipeline.test'] ?? [])[0]?.in_flight === 0, 'in_flight back to 0', 3000);
    t.pass('/routes in_flight is back to 0');
  });

  t.test('an app that closes after the first of several pipelined requests: each answered once, none twice', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);
    const answered = new Map<string, number>();
    const app = await rawApp(t, (socket, head, nth) => {
      if (nth > 0) return; // received, never answered: the connection closes below
      const path = head.split(' ')[1];
      answered.set(path, (answered.get(path) ?? 0) + 1);
      const body = `answer ${path}`;
      // No "Connection: close": the app just closes, as some do after one request.
      socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    });
    await registerRoute(nc, router, { port: app.port, uris: ['closer.pipeline.test'] });

    const paths = Array.from({ length: 40 }, (_, i) => `/r${i}`);
    const results = await burst(router.port, 'closer.pipeline.test', paths);
    t.same(
      results.map((r) => (r.status === 200 && !r.error ? r.body.toString() : `status ${r.status} ${r.error ?? ''}`)),
      paths.map((p) => `answer ${p}`),
      'every client got the answer to its own request',
    );
    const twice = [...answered].filter(([, n]) => n > 1);
    t.same(twice, [], 'no request was answered twice');
    t.equal(answered.size, 40, 'the app answered each of the 40 requests');
    const p = await pipelining(router);
    t.ok(p.pipelined_requests >= 1, `the burst was pipelined (${p.pipelined_requests} requests)`);
    t.ok(p.replays >= 1, `the unanswered ones were sent again (${p.replays} replays)`);
    t.equal(p.refusals, 1, 'the app is known to close on pipelined requests');
    const perPath = new Map<string, number>();
    for (const path of app.received) perPath.set(path, (perPath.get(path) ?? 0) + 1);
    t.ok([...perPath.values()].every((n) => n <= 2), 'no request reached the app more than twice (sent again at most once)');
    t.match(router.log(), /not pipelining requests to this app instance/, 'the router logs that it stops pipelining there');

    // From now on one request per connection: nothing is lost or sent twice.
    const connectionsBefore = app.connections();
    const receivedBefore = app.received.length;
    const later = await burst(router.port, 'closer.pipeline.test', paths.map((p) => `${p}-later`));
    t.same(summary(later), { 'status 200': 40 }, 'a second burst: all 200');
    t.equal(app.received.length - receivedBefore, 40, 'the app received each later request once');
    t.equal(app.connections() - connectionsBefore, 40, 'one connection per later request: not pipelined any more');
    t.equal((await pipelining(router)).replays, p.replays, 'no more replays');
  });

  t.test('a slow response: nothing joins its connection once past the guard, and what was queued behind it moves on', async (t) => {
    // A guard of 20 ms (the default, 0, lets nothing join a connection that owes a response).
    const router = await startRouter(t, nats, { args: ['--backend-pipeline-guard-ms', '20'] });
    const nc = await busClient(t, nats);
    const slowMs = 3000;
    const app = await trackingApp(t, (req, res) => {
      if (req.url!.startsWith('/slow')) setTimeout(() => res.end('slow'), slowMs);
      else res.end(`fast ${req.url}`);
    });
    await registerRoute(nc, router, { port: app.port, uris: ['slow.pipeline.test'] });

    // 1. The slow request alone, then, past the guard, 300 fast ones at once.
    const slow = one(router.port, 'slow.pipeline.test', { method: 'GET', path: '/slow-1' });
    await eventually(() => app.seen.connections.some((c) => c.includes('GET /slow-1')), 'the app to get /slow-1', 3000);
    await sleep(100);
    const fast = await runConcurrently(
      router.port,
      'slow.pipeline.test',
      Array.from({ length: 300 }, (_, i) => ({ method: 'GET', path: `/f${i}` })),
      50,
    );
    t.same(summary(fast), { 'status 200': 300 }, 'all 300 fast requests answered');
    t.ok(fast.every((r, i) => r.body.toString() === `fast /f${i}`), 'each with its own body');
    const slowConnection = app.seen.connections.find((c) => c.includes('GET /slow-1'))!;
    t.same(slowConnection, ['GET /slow-1'], 'no fast request was sent behind the slow one');
    const slowest = Math.max(...fast.map((r) => r.ms));
    t.ok(slowest < slowMs, `the fast requests did not wait for the slow one (slowest ${Math.round(slowest)} ms)`);
    t.equal((await slow).body.toString(), 'slow', 'the slow request completes');
    t.ok((await pipelining(router)).pipelined_requests > 0, 'the fast requests themselves were pipelined');

    // 2. Requests read in the same turn as a slow one can share its
    // connection; past the stall bound (500 ms) they are sent again alone.
    const paths = ['/slow-2', ...Array.from({ length: 15 }, (_, i) => `/g${i}`)];
    const results = await burst(router.port, 'slow.pipeline.test', paths);
    t.same(
      results.map((r) => (r.status === 200 ? r.body.toString() : `status ${r.status} ${r.error ?? ''}`)),
      ['slow', ...paths.slice(1).map((p) => `fast ${p}`)],
      'every request of the burst answered, each to its own client',
    );
    const shared = app.seen.connections.find((c) => c.includes('GET /slow-2'))!;
    const behind = shared.slice(shared.indexOf('GET /slow-2') + 1).filter((r) => r.startsWith('GET /g'));
    t.ok(behind.length > 0, `some of the burst was pipelined behind the slow request (${behind.length})`);
    const late = results.slice(1).filter((r) => r.ms > 1500);
    t.same(late.map((r) => Math.round(r.ms)), [], 'none of them waited for it: moved on within the stall bound');
    const p = await pipelining(router);
    t.ok(p.stalls >= 1 && p.replays >= behind.length, `the stall was noticed (${p.stalls}) and the waiting requests sent again (${p.replays} replays)`);
    t.equal(p.refusals, 0, 'a stall is not a refusal');
    const varz = await router.varz();
    t.equal(varz.responses_5xx, 0, 'no 5xx');
  });

  t.test('a uWebSockets.js app with asynchronous responses is served right, unpipelined once it closes on a pipeline', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);
    // uWS closes a connection when a request arrives while it owes an
    // asynchronous response, without answering anything on it.
    let handled = 0;
    const app = uWS
      .App()
      .get('/sync/:id', (res, req) => {
        handled++;
        res.end(`sync ${req.getParameter(0)}`);
      })
      .get('/async/:id', (res, req) => {
        handled++;
        const id = req.getParameter(0);
        let aborted = false;
        res.onAborted(() => (aborted = true));
        setTimeout(() => {
          if (!aborted) res.cork(() => res.end(`async ${id}`));
        }, 2);
      });
    const port = await new Promise<number>((resolve, reject) =>
      app.listen('127.0.0.1', 0, (ls) => (ls ? resolve(uWS.us_socket_local_port(ls)) : reject(new Error('uWS did not listen')))),
    );
    // uWS 20.30 has App.close() (every socket of the app); its typings lack it.
    t.teardown(() => (app as uWS.TemplatedApp & { close(): void }).close());
    await registerRoute(nc, router, { port, uris: ['uws.pipeline.test'] });

    const calls: Call[] = Array.from({ length: 2000 }, (_, i) => ({ method: 'GET', path: `/${i % 3 === 0 ? 'async' : 'sync'}/${i}` }));
    const results = await runConcurrently(router.port, 'uws.pipeline.test', calls, 50);
    const wrong = results.flatMap((r, i) => {
      const want = `${i % 3 === 0 ? 'async' : 'sync'} ${i}`;
      return r.status === 200 && !r.error && r.body.toString() === want ? [] : [`${calls[i].path}: ${r.status} ${r.error ?? ''} ${r.body.toString().slice(0, 40)}`];
    });
    t.same(wrong.slice(0, 10), [], `all 2000 answered right (${wrong.length} wrong; ${JSON.stringify(summary(results))})`);
    const p = await pipelining(router);
    t.equal(p.refusals, 1, 'the router noticed once that the app closes pipelined connections');
    t.ok(handled >= 2000, `the app handled ${handled} requests for 2000`);
    // Served unpipelined since: a second round needs no replay.
    const again = await runConcurrently(router.port, 'uws.pipeline.test', calls.slice(0, 600), 50);
    t.same(summary(again), { 'status 200': 600 }, 'a second round: all 200');
    t.equal((await pipelining(router)).replays, p.replays, 'no replay in the second round');
  });

  t.test('an app whose responses are large is not pipelined; once they are small again, it is', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);
    let size = 64 * 1024;
    const app = await trackingApp(t, (req, res) => {
      res.setHeader('content-length', size);
      res.end(Buffer.alloc(size, 'l'));
    });
    await registerRoute(nc, router, { port: app.port, uris: ['large.pipeline.test'] });
    const get = (n: number, tag: string): Call[] => Array.from({ length: n }, (_, i) => ({ method: 'GET', path: `/${tag}${i}` }));
    // The first responses show what the app sends.
    t.same(summary(await runConcurrently(router.port, 'large.pipeline.test', get(64, 'warm'), 4)), { 'status 200': 64 }, 'warm-up');
    const before = (await pipelining(router)).pipelined_requests;
    const large = await runConcurrently(router.port, 'large.pipeline.test', get(400, 'large'), 50);
    t.ok(large.every((r) => r.status === 200 && r.body.length === 64 * 1024), 'all 400 large responses whole');
    t.equal((await pipelining(router)).pipelined_requests, before, 'none of them pipelined');

    size = 100;
    await runConcurrently(router.port, 'large.pipeline.test', get(64, 'turn'), 4);
    const small = await runConcurrently(router.port, 'large.pipeline.test', get(400, 'small'), 50);
    t.ok(small.every((r) => r.status === 200 && r.body.length === 100), 'all 400 small responses whole');
    t.ok((await pipelining(router)).pipelined_requests > before, 'small ones are pipelined again');
  });

  t.test('event streams and socket.io long-polls are never pipelined: an app holds them open', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);
    const app = await trackingApp(t, (_req, res) => setTimeout(() => res.end('held'), 20));
    await registerRoute(nc, router, { port: app.port, uris: ['held.pipeline.test'] });
    const calls: Call[] = [];
    for (let i = 0; i < 300; i++) calls.push({ method: 'GET', path: i % 2 === 0 ? `/socket.io/?EIO=4&transport=polling&sid=s${i}` : `/plain${i}` });
    const results = await runConcurrently(router.port, 'held.pipeline.test', calls, 60);
    t.same(summary(results), { 'status 200': 300 }, 'all answered');
    const held = (r: string): boolean => r.includes('transport=polling') || r.startsWith('GET /events');
    const heldOverlaps = (): string[] =>
      app.seen.overlaps.filter((o) => held(o.arrived) || o.outstanding.some(held)).map((o) => `${o.arrived} while ${o.outstanding.join(', ')}`);
    t.ok(app.seen.overlaps.length > 0, 'the plain GETs were pipelined');
    t.same(heldOverlaps().slice(0, 5), [], 'no poll shared its connection with another outstanding request');
    // Event streams: the Accept header says so.
    const sse = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        new Promise<number>((resolve) => {
          const req = http.get(
            { host: '127.0.0.1', port: router.port, path: `/events${i}`, headers: { host: 'held.pipeline.test', accept: 'text/event-stream' }, agent: false },
            (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode!));
            },
          );
          req.on('error', () => resolve(0));
        }),
      ),
    );
    t.same(sse, Array(20).fill(200), 'event streams answered');
    t.same(heldOverlaps().slice(0, 5), [], 'no event stream shared its connection with another outstanding request');
  });

  t.test('POSTs are never pipelined, with or without a body', async (t) => {
    const router = await startRouter(t, nats);
    const nc = await busClient(t, nats);
    const app = await trackingApp(t, (req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => setTimeout(() => res.end(`${req.method} ${req.url} ${n}`), req.method === 'POST' ? 3 : 0));
    });
    await registerRoute(nc, router, { port: app.port, uris: ['post.pipeline.test'] });
    const calls: Call[] = Array.from({ length: 1200 }, (_, i) =>
      i % 3 === 0
        ? { method: 'POST', path: `/p${i}`, body: Buffer.from(`x${i}`) }
        : i % 3 === 1
          ? { method: 'POST', path: `/e${i}`, body: Buffer.alloc(0) }
          : { method: 'GET', path: `/g${i}` },
    );
    const results = await runConcurrently(router.port, 'post.pipeline.test', calls, 60);
    const wrong = results.flatMap((r, i) => {
      const c = calls[i];
      const want = `${c.method} ${c.path} ${c.body?.length ?? 0}`;
      return r.status === 200 && r.body.toString() === want ? [] : [`${want}: ${r.status} ${r.error ?? ''} ${r.body.toString()}`];
    });
    t.same(wrong.slice(0, 10), [], `all 1200 answered right (${wrong.length} wrong)`);
    t.same(app.seen.postOverlaps.slice(0, 5), [], 'no POST shared its app connection with another outstanding request');
    t.ok((await pipelining(router)).pipelined_requests > 0, 'the GETs among them were pipelined (the check had something to find)');
  });

  t.test('a client that leaves while its request is pipelined: 499, the others answered, counts back to 0', async (t) => {
    // A guard of 50 ms: the others join the first one's connection even if the router reads them a turn later.
    const router = await startRouter(t, nats, { args: ['--backend-pipeline-guard-ms', '50'] });
    const nc = await busClient(t, nats);
    const app = await trackingApp(t, (req, res) => {
      if (req.url === '/gone') setTimeout(() => res.end('too late'), 300);
      else setTimeout(() => res.end(`ok ${req.url}`), 50);
    });
    await registerRoute(nc, router, { port: app.port, uris: ['abort.pipeline.test'] });
    const aborts0 = (await router.varz()).client_aborts;
    const paths = ['/gone', ...Array.from({ length: 10 }, (_, i) => `/stay${i}`)];
    // The first client leaves once the app has its request, while the others wait behind it.
    const results = await burst(router.port, 'abort.pipeline.test', paths, (sockets) => {
      void eventually(() => app.seen.connections.some((c) => c.includes('GET /gone')), 'the app to get /gone', 3000).then(() => sockets[0].destroy());
    });
    t.same(
      results.slice(1).map((r) => r.body.toString()),
      paths.slice(1).map((p) => `ok ${p}`),
      'the clients that stayed got their answers',
    );
    const shared = app.seen.connections.find((c) => c.includes('GET /gone'))!;
    t.ok(shared.indexOf('GET /gone') < shared.length - 1, `others were pipelined behind the request whose client left (${JSON.stringify(shared)})`);
    await eventually(async () => (await router.varz()).client_aborts === aborts0 + 1, 'client_aborts +1', 3000);
    t.pass('the client that left is counted (499)');
    await eventually(async () => ((await router.routes())['abort.pipeline.test'] ?? [])[0]?.in_flight === 0, 'in_flight back to 0', 3000);
    t.pass('/routes in_flight back to 0');
    t.equal((await router.varz()).pipelining.replays, 0, 'nobody had to be sent again: the response of the one that left was read and dropped');
    const after = await one(router.port, 'abort.pipeline.test', { method: 'GET', path: '/after' });
    t.equal(after.body.toString(), 'ok /after', 'the route keeps serving');
  });
});
