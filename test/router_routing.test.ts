// End-to-end routing tests: the real `skiff router` process, a real
// nats-server, real sockets; nothing mocked. Each subtest starts its own
// nats-server and router (torn down by the harness), so subtests do not
// share state and one failure does not cascade.

import t from 'tap';
import { spawn } from 'node:child_process';
import type * as http from 'node:http';
import * as net from 'node:net';
import { join } from 'node:path';
import { connect, type Msg, type NatsConnection } from 'nats';
import { eventually, freePort, sleep, startNats, waitForPort, type NatsServer, type TeardownHost } from './harness';
import {
  busClient,
  get,
  publish,
  registerRoute,
  startBackend,
  startRouter,
  unregisterRoute,
  type Backend,
  type Reply,
  type RouterProcess,
} from './router_harness';

const ROOT = join(__dirname, '..');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// ---- helpers ----

/** A backend whose body is its name, so a reply shows which instance served it. */
function named(t: TeardownHost, name: string): Promise<Backend> {
  return startBackend(t, (_req, res) => res.end(name));
}

function body(reply: Reply): string {
  return reply.body.toString();
}

/** Every value of header `name` exactly as it arrived (rawHeaders keeps duplicates and order). */
function rawValues(rawHeaders: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === name.toLowerCase()) out.push(rawHeaders[i + 1]);
  return out;
}

function rawNames(rawHeaders: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) out.push(rawHeaders[i].toLowerCase());
  return out;
}

interface RawReply {
  statusLine: string;
  status: number;
  headers: Array<[string, string]>;
  body: string;
  /** Everything received, for diagnostics. */
  text: string;
}

/**
 * Writes `request` bytes on a fresh TCP connection and collects the answer
 * until the server closes, or `quietMs` after the head arrived (bounded by
 * timeoutMs overall). Used where node:http would hide or rewrite bytes.
 */
function rawRequest(port: number, request: string, opts: { quietMs?: number; timeoutMs?: number } = {}): Promise<RawReply> {
  const quietMs = opts.quietMs ?? 300;
  const timeoutMs = opts.timeoutMs ?? 3000;
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let text = '';
    let quiet: NodeJS.Timeout | undefined;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(overall);
      clearTimeout(quiet);
      socket.destroy();
      const headEnd = text.indexOf('\r\n\r\n');
      const head = headEnd === -1 ? text : text.slice(0, headEnd);
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers = lines.map((l): [string, string] => {
        const colon = l.indexOf(':');
        return [l.slice(0, colon).trim().toLowerCase(), l.slice(colon + 1).trim()];
      });
      resolve({
        statusLine,
        status: Number(/^HTTP\/\d\.\d (\d{3})/.exec(statusLine)?.[1] ?? 0),
        headers,
        body: headEnd === -1 ? '' : text.slice(headEnd + 4),
        text,
      });
    };
    const overall = setTimeout(finish, timeoutMs);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(request));
    socket.on('data', (d: string) => {
      text += d;
      if (text.includes('\r\n\r\n')) {
        clearTimeout(quiet);
        quiet = setTimeout(finish, quietMs);
      }
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', finish);
  });
}

function rawHeader(reply: RawReply, name: string): string | undefined {
  return reply.headers.find(([n]) => n === name)?.[1];
}

/** Whether something accepts TCP connections on the port right now. */
function isOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 1000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(false);
    });
  });
}

/** Collects the JSON messages published on `subject`. */
function collect(nc: NatsConnection, subject: string): any[] {
  const messages: any[] = [];
  nc.subscribe(subject, { callback: (_err, msg: Msg) => messages.push(JSON.parse(new TextDecoder().decode(msg.data))) });
  return messages;
}

async function setup(t: TeardownHost, args: string[] = []): Promise<{ nats: NatsServer; router: RouterProcess; nc: NatsConnection }> {
  const nats = await startNats(t);
  const router = await startRouter(t, nats, { args });
  const nc = await busClient(t, nats);
  return { nats, router, nc };
}

function statusGet(router: RouterProcess, path: string, auth?: string): Promise<Reply> {
  return get({ port: router.statusPort, path, headers: auth === undefined ? {} : { authorization: auth } });
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

function runCli(args: string[], timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/skiff'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---- 1. registration lifecycle ----

t.test('register serves, unregister answers 503 no_endpoints, unknown host 404 unknown_route', async (t) => {
  const { router, nc } = await setup(t);
  const app = await named(t, 'app');
  const reg = { port: app.port, uris: ['life.localhost'] };

  await registerRoute(nc, router, reg);
  const ok = await get({ port: router.port, host: 'life.localhost' });
  t.equal(ok.status, 200, 'registered route answers');
  t.equal(body(ok), 'app', 'through the registered backend');

  await unregisterRoute(nc, router, reg);
  const gone = await get({ port: router.port, host: 'life.localhost' });
  t.equal(gone.status, 503, 'unregistered route: 503 while the empty route is kept');
  t.equal(gone.headers['x-cf-routererror'], 'no_endpoints');
  t.equal(app.requests.length, 1, 'the unregistered backend got nothing more');

  const unknown = await get({ port: router.port, host: 'never.localhost' });
  t.equal(unknown.status, 404, 'a never-registered host: 404');
  t.equal(unknown.headers['x-cf-routererror'], 'unknown_route');
});

t.test('stale endpoints are pruned; refreshed ones stay', async (t) => {
  const { router, nc } = await setup(t, ['--droplet-stale-threshold', '1', '--prune-interval', '0.2', '--empty-pool-timeout', '1']);
  const stale = await named(t, 'stale');
  const fresh = await named(t, 'fresh');
  const staleReg = { port: stale.port, uris: ['stale.localhost'], stale_threshold_in_seconds: 1 };
  const freshReg = { port: fresh.port, uris: ['fresh.localhost'], stale_threshold_in_seconds: 1 };
  await registerRoute(nc, router, freshReg);
  const refresher = setInterval(() => void publish(nc, 'router.register', { host: '127.0.0.1', ...freshReg }).catch(() => {}), 300);
  t.teardown(() => clearInterval(refresher));
  await registerRoute(nc, router, staleReg);
  const registeredAt = Date.now();
  t.equal((await get({ port: router.port, host: 'stale.localhost' })).status, 200, 'served before it goes stale');

  // Poll both routes every 100 ms until the stale one answers 404 (at most 6 s).
  const staleStatuses: number[] = [];
  const freshStatuses: number[] = [];
  let goneFromRoutesAt = 0;
  const deadline = Date.now() + 6000;
  while (Date.now() < deadline) {
    const [s, f, routes] = await Promise.all([
      get({ port: router.port, host: 'stale.localhost' }),
      get({ port: router.port, host: 'fresh.localhost' }),
      router.routes(),
    ]);
    staleStatuses.push(s.status);
    freshStatuses.push(f.status);
    if (goneFromRoutesAt === 0 && !(routes['stale.localhost'] ?? []).some((e) => e.address === `127.0.0.1:${stale.port}`))
      goneFromRoutesAt = Date.now();
    if (s.status === 404) break;
    await sleep(100);
  }
  t.ok(goneFromRoutesAt > 0, 'the stale endpoint left /routes');
  t.ok(goneFromRoutesAt - registeredAt < 4000, `within a few seconds (${goneFromRoutesAt - registeredAt} ms)`);
  t.equal(staleStatuses[staleStatuses.length - 1], 404, `stale route finally 404 (seen: ${staleStatuses.join(',')})`);
  const first503 = staleStatuses.indexOf(503);
  t.ok(first503 !== -1, 'the pruned route answered 503 before being forgotten');
  t.notOk(staleStatuses.slice(Math.max(first503, 0)).includes(200), 'no 200 once pruned');
  t.ok(freshStatuses.length >= 10, `the fresh route was probed throughout (${freshStatuses.length} probes)`);
  t.same([...new Set(freshStatuses)], [200], 'the refreshed endpoint kept serving');
  t.ok((await router.routes())['fresh.localhost']?.some((e) => e.address === `127.0.0.1:${fresh.port}`), 'still listed');
});

// ---- 2. lookup ----

t.test('lookup: host normalisation, context paths, wildcards, cache invalidation', async (t) => {
  const { router, nc } = await setup(t);
  const root = await named(t, 'root');
  const api = await named(t, 'api');
  const v2 = await named(t, 'v2');
  const wild = await named(t, 'wild');
  const exact = await named(t, 'exact');
  const req = async (host: string, path = '/') => {
    const r = await get({ port: router.port, host, path });
    return r.status === 200 ? body(r) : `${r.status} ${r.headers['x-cf-routererror'] ?? ''}`;
  };

  await registerRoute(nc, router, { port: root.port, uris: ['shop.localhost'] });
  await registerRoute(nc, router, { port: api.port, uris: ['shop.localhost/api'] });
  t.equal(await req('Shop.LOCALHOST:8080'), 'root', 'Host lowercased and port stripped');
  t.equal(await req('shop.localhost', '/api'), 'api', '/api');
  t.equal(await req('shop.localhost', '/api/x'), 'api', '/api/x');
  t.equal(await req('shop.localhost', '/API/x'), 'api', '/API/x (paths match case-insensitively)');
  t.equal(await req('shop.localhost', '/api?q=1'), 'api', '/api?q=1');
  t.equal(await req('shop.localhost', '/apix'), 'root', '/apix is not under /api');
  t.equal(await req('shop.localhost', '/'), 'root', '/');

  await registerRoute(nc, router, { port: api.port, uris: ['lp.localhost/api'] });
  await registerRoute(nc, router, { port: v2.port, uris: ['lp.localhost/api/v2'] });
  t.equal(await req('lp.localhost', '/api/v2'), 'v2', 'longest prefix: /api/v2');
  t.equal(await req('lp.localhost', '/api/v2/items'), 'v2', 'longest prefix: /api/v2/items');
  t.equal(await req('lp.localhost', '/api/v1'), 'api', '/api/v1 falls to /api');
  t.equal(await req('lp.localhost', '/api/v2x'), 'api', '/api/v2x falls to /api');
  t.equal(await req('lp.localhost', '/other'), '404 unknown_route', 'no root route on lp.localhost: 404');

  await registerRoute(nc, router, { port: wild.port, uris: ['*.apps.localhost'] });
  t.equal(await req('a.apps.localhost'), 'wild', 'a.apps.localhost -> *.apps.localhost');
  t.equal(await req('x.y.apps.localhost'), 'wild', 'x.y.apps.localhost -> *.apps.localhost');
  t.equal(await req('A.Apps.Localhost:1234'), 'wild', 'wildcard with mixed case and port');
  await registerRoute(nc, router, { port: exact.port, uris: ['b.apps.localhost'] });
  t.equal(await req('b.apps.localhost'), 'exact', 'an exact registration wins over the wildcard');
  t.equal(await req('a.apps.localhost'), 'wild', 'other hosts still use the wildcard');

  // c.apps.localhost is resolved through the wildcard (and cached), then registered exactly.
  t.equal(await req('c.apps.localhost'), 'wild', 'c.apps.localhost first served by the wildcard');
  t.equal(await req('c.apps.localhost'), 'wild', 'twice (now cached)');
  await registerRoute(nc, router, { port: exact.port, uris: ['c.apps.localhost'] });
  t.equal(await req('c.apps.localhost'), 'exact', 'an exact host registered after a wildcard hit takes effect at once');

  // A cached miss must not outlive a matching wildcard registration either.
  t.equal(await req('q.other.localhost'), '404 unknown_route', 'unknown before the wildcard exists');
  await registerRoute(nc, router, { port: wild.port, uris: ['*.other.localhost'] });
  t.equal(await req('q.other.localhost'), 'wild', 'a wildcard registered after a miss takes effect at once');
});

// ---- 3. headers ----

t.test('request and response headers', async (t) => {
  const { router, nc } = await setup(t);
  const app = await startBackend(t, (req, res) => {
    if (req.url === '/response-headers') {
      res.setHeader('Connection', 'X-Foo');
      res.setHeader('X-Foo', 'hop-secret');
      res.setHeader('Keep-Alive', 'timeout=99');
      res.setHeader('Proxy-Connection', 'keep-alive');
      res.setHeader('Proxy-Authenticate', 'Basic realm="x"');
      res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; HttpOnly']);
      res.setHeader('X-Custom', 'yes');
    }
    res.end('ok');
  });
  await registerRoute(nc, router, {
    port: app.port,
    uris: ['hdr.localhost'],
    app: 'app-h',
    private_instance_id: 'inst-h',
    private_instance_index: '3',
  });
  const seen = (i: number): string[] => app.requests[i].rawHeaders;

  // A: a client that sends its own forwarding and identity headers.
  const a = await get({
    port: router.port,
    host: 'Hdr.Localhost:9999',
    path: '/a',
    headers: {
      'X-Forwarded-For': '1.2.3.4',
      'X-Forwarded-Proto': 'https',
      'X-Request-Start': '1234567890123',
      'X-Vcap-Request-Id': 'client-chosen-id',
      'X-CF-ApplicationID': 'forged-app',
      'X-CF-InstanceIndex': '99',
      'X-CF-InstanceID': 'forged-instance',
    },
  });
  t.equal(a.status, 200);
  t.same(rawValues(seen(0), 'host'), ['Hdr.Localhost:9999'], 'Host passed unchanged, once');
  t.same(rawValues(seen(0), 'x-forwarded-for'), ['1.2.3.4, 127.0.0.1'], 'X-Forwarded-For: client address appended');
  t.same(rawValues(seen(0), 'x-forwarded-proto'), ['https'], "X-Forwarded-Proto: the client's kept");
  t.same(rawValues(seen(0), 'x-request-start'), ['1234567890123'], "X-Request-Start: the client's kept");
  const idA = rawValues(seen(0), 'x-vcap-request-id');
  t.equal(idA.length, 1, 'one X-Vcap-Request-Id');
  t.match(idA[0], UUID, 'X-Vcap-Request-Id is a UUID');
  t.not(idA[0], 'client-chosen-id', "the client's request id is replaced");
  t.same(rawValues(seen(0), 'x-cf-applicationid'), ['app-h'], 'X-CF-ApplicationID from the registration, forged one dropped');
  t.same(rawValues(seen(0), 'x-cf-instanceindex'), ['3'], 'X-CF-InstanceIndex from the registration');
  t.same(rawValues(seen(0), 'x-cf-instanceid'), ['inst-h'], 'X-CF-InstanceID from the registration');

  // B: a plain client.
  const before = Date.now();
  const b = await get({ port: router.port, host: 'hdr.localhost', path: '/b' });
  const after = Date.now();
  t.equal(b.status, 200);
  t.same(rawValues(seen(1), 'x-forwarded-for'), ['127.0.0.1'], 'X-Forwarded-For: client address');
  t.same(rawValues(seen(1), 'x-forwarded-proto'), ['http'], 'X-Forwarded-Proto: http');
  const start = rawValues(seen(1), 'x-request-start');
  t.equal(start.length, 1, 'X-Request-Start added');
  t.match(start[0], /^\d{13}$/, 'X-Request-Start is epoch ms');
  t.ok(Number(start[0]) >= before - 1000 && Number(start[0]) <= after + 1000, `X-Request-Start ${start[0]} within [${before}, ${after}]`);
  const idB = rawValues(seen(1), 'x-vcap-request-id');
  t.equal(idB.length, 1);
  t.match(idB[0], UUID);
  t.not(idB[0], idA[0], 'a fresh request id per request');

  // C: hop-by-hop request headers, on a raw socket so nothing rewrites them.
  const c = await rawRequest(
    router.port,
    'GET /c HTTP/1.1\r\n' +
      'Host: hdr.localhost\r\n' +
      'Connection: close, X-Secret-Hop\r\n' +
      'X-Secret-Hop: hop-value\r\n' +
      'Keep-Alive: timeout=5\r\n' +
      'TE: trailers\r\n' +
      'Trailer: X-Trail\r\n' +
      'Upgrade: h2c\r\n' +
      'Proxy-Connection: keep-alive\r\n' +
      'X-End-To-End: kept\r\n' +
      '\r\n',
  );
  t.equal(c.status, 200, `hop-by-hop request answered (${c.statusLine})`);
  const cReq = app.requests.find((r) => r.url === '/c');
  t.ok(cReq, 'request C reached the app');
  if (cReq) {
    const names = rawNames(cReq.rawHeaders);
    for (const hop of ['connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-connection', 'x-secret-hop'])
      t.notOk(names.includes(hop), `${hop} not forwarded (app saw: ${names.join(', ')})`);
    t.same(rawValues(cReq.rawHeaders, 'x-end-to-end'), ['kept'], 'end-to-end header forwarded');
    t.same(rawValues(cReq.rawHeaders, 'host'), ['hdr.localhost'], 'Host unchanged');
  }

  // D: response headers from the app.
  const d = await get({ port: router.port, host: 'hdr.localhost', path: '/response-headers' });
  t.equal(d.status, 200);
  const dNames = rawNames(d.rawHeaders);
  t.notOk(dNames.includes('x-foo'), `a header the app's Connection listed is not passed on (client saw: ${d.rawHeaders.join(' | ')})`);
  t.notOk(dNames.includes('keep-alive'), 'Keep-Alive not passed on');
  t.notOk(dNames.includes('proxy-connection'), 'Proxy-Connection not passed on');
  t.notOk(dNames.includes('proxy-authenticate'), 'Proxy-Authenticate not passed on');
  t.notOk(rawValues(d.rawHeaders, 'connection').some((v) => /x-foo/i.test(v)), "the app's Connection value is not passed on");
  t.same(rawValues(d.rawHeaders, 'set-cookie'), ['a=1; Path=/', 'b=2; HttpOnly'], 'both Set-Cookie headers passed on');
  t.same(rawValues(d.rawHeaders, 'x-custom'), ['yes'], 'custom end-to-end header passed on');
  t.equal(body(d), 'ok');
});

// ---- 4. X-Cf-App-Instance ----

t.test('X-Cf-App-Instance pins an instance', async (t) => {
  const { router, nc } = await setup(t);
  const i0 = await named(t, 'i0');
  const i1 = await named(t, 'i1');
  await registerRoute(nc, router, { port: i0.port, uris: ['pin.localhost'], app: 'app-1', private_instance_id: 'inst-0', private_instance_index: '0' });
  await registerRoute(nc, router, { port: i1.port, uris: ['pin.localhost'], app: 'app-1', private_instance_id: 'inst-1', private_instance_index: '1' });

  const served: string[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await get({ port: router.port, host: 'pin.localhost', headers: { 'X-Cf-App-Instance': 'app-1:1' } });
    served.push(r.status === 200 ? body(r) : String(r.status));
  }
  t.same(served, Array(10).fill('i1'), 'app-1:1 always reaches instance 1');
  t.equal(i0.requests.length, 0, 'instance 0 got none of them');
  t.notOk(i1.requests.some((r) => 'x-cf-app-instance' in r.headers), 'X-Cf-App-Instance is not forwarded to the app');
  t.same(rawValues(i1.requests[0]?.rawHeaders ?? [], 'x-cf-instanceindex'), ['1'], 'the app is told its index');

  const unpinned = new Set<string>();
  for (let i = 0; i < 6; i++) unpinned.add(body(await get({ port: router.port, host: 'pin.localhost' })));
  t.same([...unpinned].sort(), ['i0', 'i1'], 'without the header both instances serve');

  const reached = i0.requests.length + i1.requests.length;
  for (const bad of ['app-1', ':1', 'app-1:', 'a:b:c']) {
    const r = await get({ port: router.port, host: 'pin.localhost', headers: { 'X-Cf-App-Instance': bad } });
    t.equal(r.status, 400, `${JSON.stringify(bad)}: 400`);
    t.equal(r.headers['x-cf-routererror'], 'invalid_cf_app_instance_header', `${JSON.stringify(bad)}: invalid_cf_app_instance_header`);
  }
  const missing = await get({ port: router.port, host: 'pin.localhost', headers: { 'X-Cf-App-Instance': 'app-1:7' } });
  t.equal(missing.status, 400, 'a non-existent index: 400');
  t.equal(missing.headers['x-cf-routererror'], 'unknown_route', 'a non-existent index: unknown_route');
  t.equal(i0.requests.length + i1.requests.length, reached, 'refused pinned requests never reach an app');
});

// ---- 5. router errors ----

t.test('router errors: empty Host, endpoint failure, headers and bodies', async (t) => {
  const { router, nc } = await setup(t);
  const app = await named(t, 'app');
  await registerRoute(nc, router, { port: app.port, uris: ['err.localhost'] });
  await registerRoute(nc, router, { port: app.port, uris: ['empty.localhost'] });
  await unregisterRoute(nc, router, { port: app.port, uris: ['empty.localhost'] });
  const deadPort = await freePort();
  await registerRoute(nc, router, { port: deadPort, uris: ['dead.localhost'] });

  const emptyHost = await rawRequest(router.port, 'GET / HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n');
  t.equal(emptyHost.status, 400, `empty Host: 400 (got ${JSON.stringify(emptyHost.text.slice(0, 200))})`);
  t.equal(rawHeader(emptyHost, 'x-cf-routererror'), 'empty_host', 'empty Host: empty_host');
  t.match(rawHeader(emptyHost, 'content-type') ?? '', /^text\/plain/, 'empty Host: text body');
  t.match(emptyHost.body, /\S/, `empty Host: body explains (${JSON.stringify(emptyHost.body)})`);
  t.equal(app.requests.length, 0, 'nothing reached the app');

  const dead = await get({ port: router.port, host: 'dead.localhost' });
  t.equal(dead.status, 502, 'nothing listening at the only endpoint: 502');
  t.equal(dead.headers['x-cf-routererror'], 'endpoint_failure');

  const cases: Array<[string, number, string, Record<string, string>]> = [
    ['nope.localhost', 404, 'unknown_route', {}],
    ['empty.localhost', 503, 'no_endpoints', {}],
    ['dead.localhost', 502, 'endpoint_failure', {}],
    ['err.localhost', 400, 'invalid_cf_app_instance_header', { 'X-Cf-App-Instance': 'x' }],
  ];
  for (const [host, status, code, headers] of cases) {
    const r = await get({ port: router.port, host, headers });
    t.equal(r.status, status, `${host}: ${status}`);
    t.equal(r.headers['x-cf-routererror'], code, `${host}: X-Cf-Routererror ${code}`);
    t.match(r.headers['content-type'] ?? '', /^text\/plain/, `${host}: text body`);
    t.ok(r.body.length > 0 && /\S/.test(body(r)), `${host}: body explains (${JSON.stringify(body(r))})`);

    const head = await rawRequest(
      router.port,
      `HEAD / HTTP/1.1\r\nHost: ${host}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}Connection: close\r\n\r\n`,
    );
    t.equal(head.status, status, `HEAD ${host}: ${status}`);
    t.equal(rawHeader(head, 'x-cf-routererror'), code, `HEAD ${host}: X-Cf-Routererror ${code}`);
    t.equal(head.body, '', `HEAD ${host}: no body`);
  }
  t.equal(app.requests.length, 0, 'no error case reached the app');
});

// ---- 6. bus ----

t.test('malformed bus messages are counted and logged without their bodies; the router carries on', async (t) => {
  const { router, nc } = await setup(t);
  const app = await named(t, 'app');
  await registerRoute(nc, router, { port: app.port, uris: ['ok.localhost'] });
  const varzBefore = await router.varz();
  t.equal(varzBefore.rejected_messages.total, 0, 'nothing rejected at first');

  // Every malformed message carries the marker "hunter2"; none of it may reach the log.
  await publish(nc, 'router.register', 'hunter2 is not JSON');
  await publish(nc, 'router.register', { host: '127.0.0.1', uris: ['hunter2-a.localhost'] });
  await publish(nc, 'router.register', { host: '127.0.0.1', port: 70000, uris: ['hunter2-b.localhost'] });
  await publish(nc, 'router.register', { host: '127.0.0.1', port: app.port, uris: [], tags: { secret: 'hunter2' } });
  await publish(nc, 'router.unregister', { host: 'hunter2', port: 'x', uris: ['ok.localhost'] });

  await eventually(async () => (await router.varz()).rejected_messages.total >= 5, 'five rejections counted', 3000).catch(() => {});
  const varz = await router.varz();
  t.equal(varz.rejected_messages.total, 5, 'rejected_messages.total counts each malformed message');
  t.same(varz.rejected_messages.by_subject, { 'router.register': 4, 'router.unregister': 1 }, 'by_subject');
  t.equal(varz.registry_messages.register, varzBefore.registry_messages.register, 'no malformed register was applied');
  t.equal(varz.registry_messages.unregister, varzBefore.registry_messages.unregister, 'no malformed unregister was applied');

  await eventually(() => /rejected message/.test(router.log()), 'a rejection log line', 3000).catch(() => {});
  const rejectionLines = router.log().split('\n').filter((l) => /rejected message/.test(l));
  t.ok(rejectionLines.some((l) => /router\.register/.test(l)), `the rejection is logged with its subject (${rejectionLines.join(' / ')})`);
  t.notOk(/hunter2/.test(router.log()), `no part of a message body in the log:\n${rejectionLines.join('\n')}`);

  t.equal((await get({ port: router.port, host: 'hunter2-b.localhost' })).status, 404, 'the port-70000 registration was not applied');
  t.equal((await get({ port: router.port, host: 'ok.localhost' })).status, 200, 'an existing route still serves');
  const later = await named(t, 'later');
  await registerRoute(nc, router, { port: later.port, uris: ['later.localhost'] });
  const r = await get({ port: router.port, host: 'later.localhost' });
  t.equal(r.status, 200, 'a later valid registration is applied');
  t.equal(body(r), 'later');
});

t.test('router.start at boot and on reconnect, router.greet, no pruning while NATS is down', async (t) => {
  const nats = await startNats(t);
  // This client must come back quickly after the restart and keep trying.
  const nc = await connect({ servers: nats.url, reconnectTimeWait: 50, reconnectJitter: 0, maxReconnectAttempts: -1 });
  t.teardown(() => nc.close());
  // A stream captures router.start while the test client may still be reconnecting.
  const jsm = await nc.jetstreamManager({ timeout: 500 });
  await jsm.streams.add({ name: 'ROUTER_START', subjects: ['router.start'] });
  const starts = collect(nc, 'router.start');
  await nc.flush();

  const router = await startRouter(t, nats, { args: ['--droplet-stale-threshold', '1', '--prune-interval', '0.2'] });
  await eventually(() => starts.length >= 1, 'router.start at boot', 5000).catch(() => {});
  t.equal(starts.length, 1, 'router.start published once at boot');
  const boot = starts[0] ?? {};
  t.match(boot.id, /\S/, 'id');
  t.ok(Array.isArray(boot.hosts) && boot.hosts.length > 0 && boot.hosts.every((h: unknown) => typeof h === 'string' && h !== ''), `hosts ${JSON.stringify(boot.hosts)}`);
  t.ok(typeof boot.minimumRegisterIntervalInSeconds === 'number' && boot.minimumRegisterIntervalInSeconds > 0, 'minimumRegisterIntervalInSeconds');
  t.equal(boot.pruneThresholdInSeconds, 1, 'pruneThresholdInSeconds follows --droplet-stale-threshold');

  const greet = await nc.request('router.greet', new Uint8Array(), { timeout: 2000 });
  const greeting = greet.json<any>();
  t.same(Object.keys(greeting).sort(), ['hosts', 'id', 'minimumRegisterIntervalInSeconds', 'pruneThresholdInSeconds'], 'router.greet reply has router.start fields');
  t.equal(greeting.id, boot.id, 'the same router id');
  t.same(greeting.hosts, boot.hosts);

  const app = await named(t, 'app');
  const reg = { port: app.port, uris: ['keep.localhost'] };
  await registerRoute(nc, router, reg);
  const refresher = setInterval(() => void publish(nc, 'router.register', { host: '127.0.0.1', ...reg }).catch(() => {}), 300);
  t.teardown(() => clearInterval(refresher));
  await sleep(1500); // longer than the threshold: only the refresher keeps it alive
  t.equal((await get({ port: router.port, host: 'keep.localhost' })).status, 200, 'served while refreshed');

  clearInterval(refresher);
  await nats.stop();
  await sleep(2500);
  const whileDown = await get({ port: router.port, host: 'keep.localhost' });
  t.equal(whileDown.status, 200, `still served after 2.5 s of NATS down (got ${whileDown.status} ${whileDown.headers['x-cf-routererror'] ?? ''})`);
  t.ok((await router.routes())['keep.localhost']?.length === 1, 'still listed in /routes');

  await nats.restart();
  const announced = async () => {
    try {
      return (await jsm.streams.info('ROUTER_START')).state.messages;
    } catch {
      return 0; // the test client may still be reconnecting
    }
  };
  // Until the router has announced itself again, and right after, the old route keeps serving:
  // the refresher is stopped, so only the router's own refresh on reconnect can keep it.
  const statusesAfter: number[] = [];
  await eventually(
    async () => {
      statusesAfter.push((await get({ port: router.port, host: 'keep.localhost' })).status);
      return (await announced()) >= 2;
    },
    'router.start after reconnect',
    10_000,
  ).catch(() => {});
  t.equal(await announced(), 2, 'router.start published again after NATS came back');
  const again = (await jsm.streams.getMessage('ROUTER_START', { seq: 2 }).catch(() => undefined))?.json<any>();
  t.equal(again?.id, boot.id, 'by the same router');
  statusesAfter.push((await get({ port: router.port, host: 'keep.localhost' })).status);
  t.same([...new Set(statusesAfter)], [200], `a route registered before the outage still works (${statusesAfter.join(',')})`);

  const later = await named(t, 'later');
  await registerRoute(nc, router, { port: later.port, uris: ['after.localhost'] });
  t.equal(body(await get({ port: router.port, host: 'after.localhost' })), 'later', 'registrations after the reconnect are applied');
});

// ---- 7. start delay ----

t.test('--start-delay: routes collected before listening, served on the first request', async (t) => {
  const nats = await startNats(t);
  const nc = await busClient(t, nats);
  const starts = collect(nc, 'router.start');
  await nc.flush();
  const app = await named(t, 'app');
  const router = await startRouter(t, nats, { args: ['--start-delay', '2'], waitForListening: false });

  // Register the way a DEA does: as soon as the router announces itself.
  await eventually(() => starts.length > 0, 'router.start', 10_000);
  const announcedAt = Date.now();
  await waitForPort(router.statusPort, '127.0.0.1', 5000);
  await registerRoute(nc, router, { port: app.port, uris: ['early.localhost'] });
  t.notOk(await isOpen(router.port), 'the app port is not open during the delay');
  t.notOk(/router listening/.test(router.log()), 'not listening yet');

  await waitForPort(router.port, '127.0.0.1', 6000);
  const openedAfter = Date.now() - announcedAt;
  t.ok(openedAfter >= 1500, `the app port opened after the delay (${openedAfter} ms after router.start)`);
  const first = await get({ port: router.port, host: 'early.localhost' });
  t.equal(first.status, 200, 'the first request is served');
  t.equal(body(first), 'app');
});

// ---- 8. status port ----

t.test('status port: health, auth, varz counters', async (t) => {
  const { router, nc } = await setup(t);
  const good = basic('test', 'test-secret');

  for (const path of ['/health', '/healthz']) {
    const r = await statusGet(router, path);
    t.equal(r.status, 200, `${path} 200 without auth`);
    t.equal(body(r).trim(), 'ok', `${path} ok`);
    const r10 = await rawRequest(router.statusPort, `GET ${path} HTTP/1.0\r\n\r\n`);
    t.equal(r10.status, 200, `${path} over HTTP/1.0 (${r10.statusLine})`);
    t.equal(r10.body.trim(), 'ok', `${path} over HTTP/1.0: ok`);
  }
  for (const path of ['/varz', '/routes']) {
    for (const [what, auth] of [['no', undefined], ['wrong', basic('test', 'wrong')], ['wrong user', basic('admin', 'test-secret')]] as const) {
      const r = await statusGet(router, path, auth);
      t.equal(r.status, 401, `${path} with ${what} credentials: 401`);
      t.match(r.headers['www-authenticate'] ?? '', /^Basic /, `${path}: WWW-Authenticate`);
      t.notOk(/requests|address/.test(body(r)), `${path}: no data without auth`);
    }
    const r = await statusGet(router, path, good);
    t.equal(r.status, 200, `${path} with credentials`);
    t.match(r.headers['content-type'] ?? '', /json/, `${path} is JSON`);
    t.doesNotThrow(() => JSON.parse(body(r)), `${path} parses`);
  }

  const app = await named(t, 'app');
  const deadPort = await freePort();
  await registerRoute(nc, router, { port: app.port, uris: ['v.localhost'] });
  await registerRoute(nc, router, { port: deadPort, uris: ['dead.localhost'] });
  await registerRoute(nc, router, { port: app.port, uris: ['gone.localhost'] });
  let varz = await router.varz();
  t.equal(varz.urls, 3, 'urls counts routes');
  t.equal(varz.droplets, 3, 'droplets counts endpoints');
  t.same(varz.registry_messages, { register: 3, unregister: 0, pending: 0 }, 'registry_messages (none waiting)');
  await unregisterRoute(nc, router, { port: app.port, uris: ['gone.localhost'] });

  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push((await get({ port: router.port, host: 'v.localhost' })).status);
  for (let i = 0; i < 2; i++) statuses.push((await get({ port: router.port, host: 'nope.localhost' })).status);
  statuses.push((await get({ port: router.port, host: 'gone.localhost' })).status);
  statuses.push((await get({ port: router.port, host: 'dead.localhost' })).status);
  t.same(statuses, [200, 200, 200, 200, 200, 404, 404, 503, 502], 'traffic as planned');

  varz = await router.varz();
  t.equal(varz.requests, 9, 'requests');
  t.equal(varz.responses_2xx, 5, 'responses_2xx');
  t.equal(varz.responses_4xx, 2, 'responses_4xx');
  t.equal(varz.responses_5xx, 2, 'responses_5xx');
  t.equal(varz.bad_requests, 2, 'bad_requests (the unknown routes)');
  t.equal(varz.bad_gateways, 1, 'bad_gateways');
  t.equal(varz.droplets, 2, 'droplets after the unregister');
  t.same(varz.registry_messages, { register: 3, unregister: 1, pending: 0 }, 'registry_messages after the unregister');
  for (const p of ['p50', 'p90', 'p99', 'max'])
    t.ok(typeof varz.latency_ms?.[p] === 'number' && varz.latency_ms[p] > 0, `latency_ms.${p} > 0 (${varz.latency_ms?.[p]})`);
  t.ok(varz.latency_ms.p50 <= varz.latency_ms.p99 && varz.latency_ms.p99 <= varz.latency_ms.max, 'percentiles ordered');
});

t.test('generated status credentials are logged and work', async (t) => {
  const nats = await startNats(t);
  const router = await startRouter(t, nats, { credentials: false });
  await eventually(() => /status credentials generated/.test(router.log()), 'credentials line', 3000).catch(() => {});
  const line = router.log().split('\n').find((l) => /status credentials generated/.test(l)) ?? '';
  t.ok(line !== '', 'the log has a "status credentials generated" line');
  const user = /\buser=(\S+)/.exec(line)?.[1] ?? '';
  const password = /\bpassword=(\S+)/.exec(line)?.[1] ?? '';
  t.ok(user !== '' && password.length >= 8, `user and a password are logged (user=${user})`);
  const ok = await statusGet(router, '/varz', basic(user, password));
  t.equal(ok.status, 200, 'the logged credentials open /varz');
  t.equal((await statusGet(router, '/routes', basic(user, password))).status, 200, 'and /routes');
  t.equal((await statusGet(router, '/varz', basic('test', 'test-secret'))).status, 401, 'other credentials do not');
});

// ---- 10. CLI ----

t.test('CLI: usage errors exit 2 with one line, --help exits 0', async (t) => {
  const [notNumber, bogus, help] = await Promise.all([
    runCli(['router', '--port', 'notanumber']),
    runCli(['router', '--bogus']),
    runCli(['router', '--help']),
  ]);
  for (const [name, r, mention] of [['--port notanumber', notNumber, /--port/], ['--bogus', bogus, /--bogus/]] as const) {
    t.equal(r.code, 2, `${name}: exit code 2`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    t.equal(lines.length, 1, `${name}: a single line on stderr (${JSON.stringify(r.stderr)})`);
    t.match(lines[0] ?? '', mention, `${name}: the error names the flag`);
  }
  t.equal(help.code, 0, '--help exits 0');
  for (const flag of ['--port', '--status-port', '--nats', '--status-user', '--status-password', '--access-log', '--lb', '--start-delay', '--droplet-stale-threshold'])
    t.ok(help.stdout.includes(flag), `--help lists ${flag}`);
});
