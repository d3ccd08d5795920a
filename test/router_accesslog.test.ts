// --access-log: one line per request in protocol.md's format, read back from
// the file a real router process wrote and parsed field by field; hostile
// header values cannot forge a line; SIGHUP reopens the file (logrotate); a
// stalled disk (a FIFO nobody reads) costs dropped, counted lines, never a
// stalled request path or unbounded memory.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { WebSocket, WebSocketServer } from 'ws';
import { ACCESS_LOG_LINE } from '../router/accesslog/format';
import { eventually, sleep, startNats } from './harness';
import { busClient, get, registerRoute, startBackend, startRouter } from './router_harness';

interface Line {
  raw: string;
  host: string;
  timestamp: string;
  requestLine: string;
  status: number;
  bytesReceived: number;
  bytesSent: number;
  referer: string;
  userAgent: string;
  client: string;
  backend: string;
  forwardedFor: string;
  forwardedProto: string;
  requestId: string;
  responseTime: number;
  gorouterTime: number;
  appId: string;
  appIndex: string;
  instanceId: string;
  routerError: string;
}

function unescape(value: string): string {
  return value.replace(/\\(x[0-9a-f]{2}|u[0-9a-f]{4}|["\\])/g, (_m, e: string) =>
    e.length === 1 ? e : String.fromCharCode(parseInt(e.slice(1), 16)),
  );
}

function parseLine(raw: string): Line | undefined {
  const m = ACCESS_LOG_LINE.exec(raw);
  if (m === null) return undefined;
  const q = (i: number) => unescape(m[i]);
  return {
    raw,
    host: m[1],
    timestamp: m[2],
    requestLine: q(3),
    status: Number(m[4]),
    bytesReceived: Number(m[5]),
    bytesSent: Number(m[6]),
    referer: q(7),
    userAgent: q(8),
    client: q(9),
    backend: q(10),
    forwardedFor: q(11),
    forwardedProto: q(12),
    requestId: q(13),
    responseTime: Number(m[14]),
    gorouterTime: Number(m[15]),
    appId: q(16),
    appIndex: q(17),
    instanceId: q(18),
    routerError: q(19),
  };
}

function readLines(path: string): string[] {
  if (!fs.existsSync(path)) return [];
  return fs.readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
}

/** Waits until a line's request line contains `marker`, and returns it parsed (failing on any unparseable line). */
async function lineFor(path: string, marker: string): Promise<Line> {
  let found: Line | undefined;
  await eventually(() => {
    for (const raw of readLines(path)) {
      const line = parseLine(raw);
      if (line === undefined) throw new Error(`line does not match the access log format:\n${raw}`);
      if (line.requestLine.includes(marker)) found = line;
    }
    return found !== undefined;
  }, `access log line for ${marker}`, 3000);
  return found!;
}

function rawRequest(port: number, request: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    // Not end(): uWS drops a request whose client half-closed before the answer. Connection: close ends it.
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
  });
}

const APP = { app: 'app-guid-1', private_instance_id: 'instance-guid-1', private_instance_index: '3' };

t.test('one parseable line per request, every field right', async (t) => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'skiff-accesslog-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const logPath = join(dir, 'access.log');
  const nats = await startNats(t, { jetstream: false });
  const router = await startRouter(t, nats, { args: ['--access-log', logPath] });
  const nc = await busClient(t, nats);
  const requestIds = new Map<string, string>();
  const backend = await startBackend(t, (req, res) => {
    requestIds.set(req.url ?? '', String(req.headers['x-vcap-request-id']));
    let received = 0;
    req.on('data', (c: Buffer) => (received += c.length));
    req.on('end', () => {
      const delay = req.url?.startsWith('/slow') ? 150 : 0;
      setTimeout(() => res.end(`hello ${req.method} ${received}`), delay);
    });
  });
  await registerRoute(nc, router, { port: backend.port, uris: ['shop.localhost'], ...APP });
  const closedPort = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  await registerRoute(nc, router, { port: closedPort, uris: ['down.localhost'], app: 'down-app', private_instance_index: '0' });

  await t.test('a proxied GET', async (t) => {
    const before = Date.now();
    const reply = await get({
      port: router.port,
      host: 'shop.localhost',
      path: '/slow/api?q=1&x=%22',
      headers: { 'user-agent': 'curl/8.0', referer: 'http://ref.example/page', 'x-forwarded-for': '10.1.2.3' },
    });
    t.equal(reply.status, 200);
    const line = await lineFor(logPath, '/slow/api');
    t.equal(line.host, 'shop.localhost', 'host');
    const at = Date.parse(line.timestamp);
    t.ok(at >= before - 5 && at <= Date.now(), 'timestamp: when the request arrived, ISO with ms');
    t.equal(line.requestLine, 'GET /slow/api?q=1&x=%22 HTTP/1.1', 'request line');
    t.equal(line.status, 200, 'status');
    t.equal(line.bytesReceived, 0, 'no request body');
    t.equal(line.bytesSent, reply.body.length, 'response body bytes');
    t.equal(line.referer, 'http://ref.example/page', 'referer');
    t.equal(line.userAgent, 'curl/8.0', 'user agent');
    t.equal(line.client, '127.0.0.1', 'client address (IP only: uWS 20.30 does not expose the port)');
    t.equal(line.backend, `127.0.0.1:${backend.port}`, 'backend address');
    t.equal(line.forwardedFor, '10.1.2.3, 127.0.0.1', 'x_forwarded_for as forwarded');
    t.equal(line.forwardedProto, 'http', 'x_forwarded_proto');
    t.equal(line.requestId, requestIds.get('/slow/api?q=1&x=%22'), 'vcap_request_id: the one the app received');
    t.match(line.requestId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    t.ok(line.responseTime >= 0.15 && line.responseTime < 2, `response_time ${line.responseTime} covers the app's 150 ms`);
    t.ok(line.gorouterTime >= 0 && line.gorouterTime < 0.1, `gorouter_time ${line.gorouterTime} excludes the app's time`);
    t.ok(line.gorouterTime <= line.responseTime);
    t.equal(line.appId, 'app-guid-1', 'app_id');
    t.equal(line.appIndex, '3', 'app_index');
    t.equal(line.instanceId, 'instance-guid-1', 'instance_id');
    t.equal(line.routerError, '-', 'x_cf_routererror empty: written "-"');
    t.match(line.raw, / "-" "curl|"http:\/\/ref/, 'raw line has quoted fields');
  });

  await t.test('a client\'s X-Request-Start never moves the router\'s own figures', async (t) => {
    // A client claiming its request started an hour ago (or in 1970) must not
    // turn up as an hour of latency in the access log or /varz.
    for (const [path, claimed] of [['/forged-hour', String(Date.now() - 3_600_000)], ['/forged-1970', '1']] as const) {
      const reply = await get({ port: router.port, host: 'shop.localhost', path, headers: { 'x-request-start': claimed } });
      t.equal(reply.status, 200);
      const line = await lineFor(logPath, path);
      t.ok(line.responseTime < 2, `${path}: response_time ${line.responseTime} is the router's own measure`);
      t.ok(line.gorouterTime < 0.1, `${path}: gorouter_time ${line.gorouterTime}`);
    }
    const varz = await router.varz();
    t.ok(varz.latency_ms.max < 2000, `the latency histogram's max (${varz.latency_ms.max} ms) holds no forged hour`);
  });

  await t.test('a POST: request body bytes received', async (t) => {
    const body = Buffer.alloc(5000, 'b');
    const reply = await get({ port: router.port, host: 'shop.localhost', path: '/upload', method: 'POST', body });
    t.equal(reply.status, 200);
    const line = await lineFor(logPath, '/upload');
    t.equal(line.requestLine, 'POST /upload HTTP/1.1');
    t.equal(line.bytesReceived, 5000, 'bytes received');
    t.equal(line.bytesSent, reply.body.length, 'bytes sent');
    t.equal(line.referer, '-', 'no referer: "-"');
  });

  await t.test('HEAD: no body bytes', async (t) => {
    const reply = await get({ port: router.port, host: 'shop.localhost', path: '/head-me', method: 'HEAD' });
    t.equal(reply.status, 200);
    const line = await lineFor(logPath, '/head-me');
    t.equal(line.requestLine, 'HEAD /head-me HTTP/1.1');
    t.equal(line.bytesSent, 0);
  });

  await t.test('router-answered errors are logged: 404 unknown_route, 502 endpoint_failure', async (t) => {
    const missing = await get({ port: router.port, host: 'nowhere.localhost', path: '/missing-route?a=b', headers: { 'user-agent': 'probe/1' } });
    t.equal(missing.status, 404);
    const l404 = await lineFor(logPath, '/missing-route');
    t.equal(l404.host, 'nowhere.localhost');
    t.equal(l404.requestLine, 'GET /missing-route?a=b HTTP/1.1');
    t.equal(l404.status, 404);
    t.equal(l404.bytesSent, missing.body.length, 'the error body the client got');
    t.equal(l404.userAgent, 'probe/1');
    t.equal(l404.backend, '-', 'no backend');
    t.equal(l404.appId, '-');
    t.equal(l404.routerError, 'unknown_route');
    t.equal(l404.forwardedFor, '127.0.0.1');

    const down = await get({ port: router.port, host: 'down.localhost', path: '/down-app' });
    t.equal(down.status, 502);
    const l502 = await lineFor(logPath, '/down-app');
    t.equal(l502.status, 502);
    t.equal(l502.routerError, 'endpoint_failure');
    t.equal(l502.backend, `127.0.0.1:${closedPort}`, 'the backend that failed');
    t.equal(l502.appId, 'down-app');
    t.equal(l502.bytesSent, down.body.length, 'the error body the client got');
    t.match(l502.requestId, /^[0-9a-f-]{36}$/);
  });

  await t.test('hostile header values cannot forge a line or a field', async (t) => {
    const forged = '" x_cf_routererror:"forged';
    const ua = `evil\\agent ${forged}\t\u2028 tail`;
    const before = readLines(logPath).length;
    const reply = await rawRequest(
      router.port,
      Buffer.from(`GET /hostile?x=" HTTP/1.1\r\nHost: shop.localhost\r\nUser-Agent: ${ua}\r\nReferer: a"b\\c\r\nConnection: close\r\n\r\n`, 'utf8'),
    );
    t.match(reply, /^HTTP\/1\.1 200 /);
    const reply404 = await rawRequest(router.port, `GET /hostile-host HTTP/1.1\r\nHost: bad"host\\x\r\nConnection: close\r\n\r\n`);
    t.match(reply404, /^HTTP\/1\.1 404 /);
    const line = await lineFor(logPath, '/hostile?');
    const l404 = await lineFor(logPath, '/hostile-host');
    t.equal(line.userAgent, ua, 'user agent round-trips exactly through the escaping');
    t.equal(line.referer, 'a"b\\c', 'referer round-trips');
    t.equal(line.requestLine, 'GET /hostile?x=" HTTP/1.1');
    t.equal(line.routerError, '-', 'no forged x_cf_routererror');
    t.notMatch(line.raw, /[\t\u2028]/, 'no raw tab or line separator in the file');
    t.equal(l404.host, 'bad\\"host\\\\x', 'bare host: quote and backslash escaped');
    const lines = readLines(logPath);
    t.equal(lines.length, before + 2, 'exactly one line per request');
    for (const raw of lines) t.ok(ACCESS_LOG_LINE.test(raw), 'every line matches the format');
  });

  await t.test('a WebSocket: one line when it closes, 101, bytes each way, its duration', async (t) => {
    const wsBackend = await startBackend(t, undefined, (server) => {
      new WebSocketServer({ server }).on('connection', (socket) => socket.on('message', (data) => socket.send(`${data}${data}`)));
    });
    await registerRoute(nc, router, { port: wsBackend.port, uris: ['chat.localhost'], app: 'chat-app', private_instance_index: '2' });
    const ws = new WebSocket(`ws://127.0.0.1:${router.port}/ws-chat?room=1`, { headers: { host: 'chat.localhost', 'user-agent': 'ws-test' } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const reply = await new Promise<string>((resolve) => {
      ws.once('message', (d) => resolve(d.toString()));
      ws.send('0123456789');
      setTimeout(() => resolve('(no reply)'), 3000);
    });
    t.equal(reply, '01234567890123456789', 'relayed');
    await sleep(300);
    t.notOk(readLines(logPath).some((l) => l.includes('/ws-chat')), 'nothing logged while it is open');
    ws.close(1000);
    const line = await lineFor(logPath, '/ws-chat');
    t.equal(line.requestLine, 'GET /ws-chat?room=1 HTTP/1.1');
    t.equal(line.status, 101);
    t.equal(line.bytesReceived, 10, 'message bytes client -> app');
    t.equal(line.bytesSent, 20, 'message bytes app -> client');
    t.equal(line.userAgent, 'ws-test');
    t.equal(line.backend, `127.0.0.1:${wsBackend.port}`);
    t.equal(line.appId, 'chat-app');
    t.equal(line.appIndex, '2');
    t.ok(line.responseTime >= 0.3, `response_time ${line.responseTime}: the WebSocket's life`);
    t.equal(readLines(logPath).filter((l) => l.includes('/ws-chat')).length, 1, 'exactly one line');
  });

  await t.test('SIGHUP reopens the file (logrotate)', async (t) => {
    const rotated = `${logPath}.1`;
    fs.renameSync(logPath, rotated);
    t.equal((await get({ port: router.port, host: 'shop.localhost', path: '/before-hup' })).status, 200);
    await lineFor(rotated, '/before-hup'); // still the old file: nobody said to reopen
    router.signal('SIGHUP');
    await eventually(() => /access log reopened/.test(router.log()), 'reopen logged');
    t.equal((await get({ port: router.port, host: 'shop.localhost', path: '/after-hup' })).status, 200);
    const line = await lineFor(logPath, '/after-hup');
    t.equal(line.status, 200, 'new requests go to the new file');
    t.notOk(readLines(rotated).some((l) => l.includes('/after-hup')), 'and not to the rotated one');
    t.notOk(readLines(logPath).some((l) => l.includes('/before-hup')), 'the rotated file keeps the old lines');
    const varz = await router.varz();
    t.equal(varz.access_log.dropped, 0, 'nothing dropped');
    t.ok(varz.access_log.lines >= 9, `${varz.access_log.lines} lines written`);
  });

  await t.test('the router flushes the log when it stops', async (t) => {
    t.equal((await get({ port: router.port, host: 'shop.localhost', path: '/last-one' })).status, 200);
    t.equal(await router.stop(), 0);
    t.ok(readLines(logPath).some((l) => l.includes('/last-one')), 'the last line made it to disk');
  });
});

t.test('a stalled disk: lines are dropped and counted, requests never wait, memory stays bounded', async (t) => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'skiff-accesslog-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'access.fifo');
  const mk = spawn('mkfifo', [fifo]);
  await new Promise((resolve) => mk.once('exit', resolve));
  // A reader that never reads: the pipe (64 KiB) fills and the router's writes block in the thread pool.
  const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  let readerClosed = false;
  t.teardown(() => {
    if (!readerClosed) fs.closeSync(reader);
  });
  const nats = await startNats(t, { jetstream: false });
  const router = await startRouter(t, nats, { args: ['--access-log', fifo, '--access-log-buffer-kb', '16'] });
  const nc = await busClient(t, nats);
  const backend = await startBackend(t);
  await registerRoute(nc, router, { port: backend.port, uris: ['stall.localhost'], ...APP });

  const started = Date.now();
  const pad = 'p'.repeat(300);
  for (let batch = 0; batch < 10; batch++) {
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) => get({ port: router.port, host: 'stall.localhost', path: `/stall-${batch}-${i}?${pad}` })),
    );
    for (const r of replies) if (r.status !== 200) t.fail(`status ${r.status}`);
  }
  const took = Date.now() - started;
  t.ok(took < 15_000, `500 requests answered in ${took} ms while the log could not be written`);
  const varz = await router.varz();
  t.ok(varz.access_log.dropped > 0, `${varz.access_log.dropped} lines dropped and counted`);
  t.ok(varz.requests >= 500);
  t.match(router.log(), /access log buffer full/, 'the stall is logged');

  // Someone reads again: the writer catches up and new lines arrive.
  const outPath = join(dir, 'drained.log');
  const cat = spawn('sh', ['-c', `exec cat "${fifo}" > "${outPath}"`], { stdio: 'ignore' });
  t.teardown(() => {
    cat.kill('SIGKILL');
  });
  await sleep(200);
  fs.closeSync(reader);
  readerClosed = true;
  await eventually(async () => {
    await get({ port: router.port, host: 'stall.localhost', path: '/after-stall' });
    return readLines(outPath).some((l) => l.includes('/after-stall'));
  }, 'lines flow again once the pipe is read', 10_000);
  const tail = readLines(outPath).filter((l) => l.includes('/after-stall'));
  t.ok(ACCESS_LOG_LINE.test(tail[0]), 'a complete, parseable line after the stall');
  t.equal(await router.stop(), 0, 'router stops cleanly');
});
