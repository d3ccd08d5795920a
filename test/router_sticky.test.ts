// Sticky sessions, session affinity, and the headers a client may not set, end to end.
import * as net from 'node:net';
import t from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { eventually, sleep, startNats } from './harness';
import { busClient, get, registerRoute, startBackend, startRouter, unregisterRoute, type Registration, type Reply } from './router_harness';

t.test('sticky sessions', async (t) => {
  const nats = await startNats(t);
  const router = await startRouter(t, nats, { args: ['--sticky-session-cookies', 'JSESSIONID,PHPSESSID'] });
  const nc = await busClient(t, nats);
  const backends = await Promise.all(
    ['i-0', 'i-1', 'i-2'].map((id) =>
      startBackend(t, (req, res) => {
        if (req.url!.endsWith('/login')) {
          res.setHeader('Set-Cookie', ['JSESSIONID=s3cr3t; Path=/; Secure; SameSite=Lax; Max-Age=600', 'theme=dark']);
        }
        if (req.url === '/php') res.setHeader('Set-Cookie', 'PHPSESSID=p');
        res.end(id);
      }),
    ),
  );
  for (const [i, b] of backends.entries())
    await registerRoute(nc, router, { port: b.port, uris: ['shop.localhost', 'shop.localhost/cart'], app: 'shop', private_instance_id: `i-${i}`, private_instance_index: String(i) });

  const login = await get({ port: router.port, host: 'shop.localhost', path: '/login' });
  const served = login.body.toString();
  const cookies = login.headers['set-cookie'] ?? [];
  const vcap = cookies.find((c) => c.startsWith('__VCAP_ID__='));
  t.ok(vcap, `__VCAP_ID__ set next to JSESSIONID (got ${JSON.stringify(cookies)})`);
  t.equal(vcap, `__VCAP_ID__=${served}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=600`, 'names the instance, copies the attributes');
  t.ok(cookies.includes('theme=dark') && cookies.some((c) => c.startsWith('JSESSIONID=s3cr3t')), "the app's own cookies pass unchanged");

  const plain = await get({ port: router.port, host: 'shop.localhost', path: '/' });
  t.notOk(plain.headers['set-cookie'], 'no session cookie from the app: no __VCAP_ID__');

  const sticky = { cookie: `JSESSIONID=s3cr3t; __VCAP_ID__=${served}` };
  const seen = new Set<string>();
  for (let i = 0; i < 12; i++) seen.add((await get({ port: router.port, host: 'shop.localhost', path: '/', headers: sticky })).body.toString());
  t.same([...seen], [served], 'every request with both cookies reaches the same instance');

  const withoutSession = new Set<string>();
  for (let i = 0; i < 9; i++)
    withoutSession.add((await get({ port: router.port, host: 'shop.localhost', headers: { cookie: `__VCAP_ID__=${served}` } })).body.toString());
  t.ok(withoutSession.size > 1, '__VCAP_ID__ alone does not pin (no session cookie)');

  const cart = await get({ port: router.port, host: 'shop.localhost', path: '/cart/login' });
  const cartVcap = (cart.headers['set-cookie'] ?? []).find((c) => c.startsWith('__VCAP_ID__='));
  t.match(cartVcap, /; Path=\/cart; /, 'Path is the route\'s context path');

  const php = await get({ port: router.port, host: 'shop.localhost', path: '/php' });
  t.ok((php.headers['set-cookie'] ?? []).some((c) => c.startsWith('__VCAP_ID__=')), 'a configured extra session cookie works too');

  // The pinned instance leaves: requests fall back to another, without an error.
  const gone = Number(served.slice(2));
  await unregisterRoute(nc, router, { port: backends[gone].port, uris: ['shop.localhost', 'shop.localhost/cart'] });
  for (let i = 0; i < 4; i++) {
    const reply = await get({ port: router.port, host: 'shop.localhost', path: '/', headers: sticky });
    t.equal(reply.status, 200);
    t.not(reply.body.toString(), served, 'another instance answers');
  }
});

t.test('headers a client may not set, and --forwarded-headers', async (t) => {
  const nats = await startNats(t);
  const trusting = await startRouter(t, nats);
  const sanitizing = await startRouter(t, nats, { args: ['--forwarded-headers', 'sanitize'] });
  const nc = await busClient(t, nats);
  const backend = await startBackend(t, (req, res) => res.end(JSON.stringify(req.headers)));
  for (const router of [trusting, sanitizing])
    await registerRoute(nc, router, { port: backend.port, uris: ['h.localhost'], app: 'app-x', private_instance_id: 'inst-x', private_instance_index: '0' });

  const forged = {
    'x-forwarded-for': '6.6.6.6',
    'x-forwarded-proto': 'https',
    'x-cf-applicationid': 'forged',
    'x-cf-instanceid': 'forged',
    'x-cf-forwarded-url': 'http://evil/',
    'x-vcap-request-id': 'forged',
    'x-vcap-anything': 'forged',
    'x-cfnot-router': 'kept',
  };
  const viaTrust = JSON.parse((await get({ port: trusting.port, host: 'h.localhost', headers: forged })).body.toString());
  t.equal(viaTrust['x-forwarded-for'], '6.6.6.6, 127.0.0.1', 'trust: the client address is appended');
  t.equal(viaTrust['x-forwarded-proto'], 'https', "trust: the client's proto is kept");
  t.equal(viaTrust['x-cf-applicationid'], 'app-x', 'router headers replace forged ones');
  t.equal(viaTrust['x-cf-instanceid'], 'inst-x');
  t.not(viaTrust['x-vcap-request-id'], 'forged');
  t.equal(viaTrust['x-cf-forwarded-url'], undefined, 'other X-Cf-* from clients are dropped');
  t.equal(viaTrust['x-vcap-anything'], undefined, 'X-Vcap-* from clients are dropped');
  t.equal(viaTrust['x-cfnot-router'], 'kept', 'only the exact prefixes are dropped');

  const viaSanitize = JSON.parse((await get({ port: sanitizing.port, host: 'h.localhost', headers: forged })).body.toString());
  t.equal(viaSanitize['x-forwarded-for'], '127.0.0.1', 'sanitize: replaced by the client address');
  t.equal(viaSanitize['x-forwarded-proto'], 'http', 'sanitize: the scheme the router saw');

  // CR, LF and NUL inside a header never reach an app.
  const before = backend.requests.length;
  for (const raw of ['X-A: a\rb', 'X-A: a\nX-Injected: 1', 'X-A: a\0b', 'X\nA: b']) {
    const reply = await new Promise<string>((resolve) => {
      const socket = net.connect(trusting.port, '127.0.0.1', () => socket.write(`GET / HTTP/1.1\r\nHost: h.localhost\r\n${raw}\r\n\r\n`));
      let data = '';
      socket.on('data', (d) => (data += d.toString('latin1')));
      socket.on('close', () => resolve(data));
      socket.on('error', () => resolve(data));
      setTimeout(() => socket.destroy(), 1500);
    });
    t.notMatch(reply, /^HTTP\/1\.1 200/, `${JSON.stringify(raw)} is refused`);
  }
  await sleep(200);
  t.equal(backend.requests.length, before, 'the app saw none of them');
});

/** The instance a WebSocket through the router reached (the app sends its id first), and the 101's Set-Cookie. */
function wsReach(routerPort: number, host: string, cookie?: string): Promise<{ instance: string; setCookie: string[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${routerPort}/socket`, { headers: { host, ...(cookie !== undefined && { cookie }) } });
    let setCookie: string[] = [];
    ws.once('upgrade', (res) => (setCookie = res.headers['set-cookie'] ?? []));
    ws.once('message', (data) => {
      ws.close();
      resolve({ instance: data.toString(), setCookie });
    });
    ws.once('error', reject);
  });
}

const vcapOf = (reply: Reply): string[] => (reply.headers['set-cookie'] ?? []).filter((c) => c.startsWith('__VCAP_ID__='));

t.test('session affinity: a route registered with it pins every client by __VCAP_ID__ alone', async (t) => {
  const nats = await startNats(t);
  const router = await startRouter(t, nats);
  const nc = await busClient(t, nats);
  const ids = ['i-0', 'i-1', 'i-2'];
  const backends = await Promise.all(
    ids.map((id) =>
      startBackend(
        t,
        (req, res) => {
          if (req.url === '/login') res.setHeader('Set-Cookie', 'JSESSIONID=s; Max-Age=60');
          res.end(id);
        },
        (server) => new WebSocketServer({ server }).on('connection', (ws) => ws.send(id)),
      ),
    ),
  );
  const registration = (i: number, affinity: boolean): Registration => ({
    port: backends[i].port,
    uris: ['chat.localhost'],
    app: 'chat',
    private_instance_id: ids[i],
    private_instance_index: String(i),
    ...(affinity && { options: { session_affinity: true } }),
  });
  for (let i = 0; i < 3; i++) {
    await registerRoute(nc, router, registration(i, true));
    // The same instances under a route without affinity: today's behaviour there.
    await registerRoute(nc, router, { ...registration(i, false), uris: ['plain.localhost'] });
  }
  const chat = (cookie?: string, path = '/') => get({ port: router.port, host: 'chat.localhost', path, headers: cookie === undefined ? {} : { cookie } });

  const first = await chat();
  const pinned = first.body.toString();
  t.same(vcapOf(first), [`__VCAP_ID__=${pinned}; Path=/; HttpOnly; SameSite=Lax`], 'the first response pins the client, though the app set no cookie');

  const cookie = `theme=dark; __VCAP_ID__=${pinned}`;
  const served = new Set<string>();
  let reset = 0;
  for (let i = 0; i < 12; i++) {
    const reply = await chat(cookie);
    served.add(reply.body.toString());
    reset += vcapOf(reply).length;
  }
  t.same([...served], [pinned], 'every request with the cookie reaches that instance');
  t.equal(reset, 0, 'and is not given the cookie again');

  const login = await chat(undefined, '/login');
  t.equal(vcapOf(login).length, 1, "an app's JSESSIONID adds no second __VCAP_ID__");
  t.match(vcapOf(login)[0], /SameSite=Lax$/, 'the pin is the route\'s own, not one copied from JSESSIONID (no Max-Age)');

  const ws = await wsReach(router.port, 'chat.localhost', cookie);
  t.equal(ws.instance, pinned, 'a WebSocket upgrade follows the pin');
  t.same(ws.setCookie, [], 'and keeps the cookie');
  const wsFresh = await wsReach(router.port, 'chat.localhost');
  t.same(wsFresh.setCookie, [`__VCAP_ID__=${wsFresh.instance}; Path=/; HttpOnly; SameSite=Lax`], 'an upgrade without the cookie is pinned by its 101');

  const plain = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const reply = await get({ port: router.port, host: 'plain.localhost', headers: { cookie } });
    plain.add(reply.body.toString());
    t.same(vcapOf(reply), [], 'a route without affinity sets no cookie');
  }
  t.ok(plain.size > 1, 'and __VCAP_ID__ alone does not pin there');

  // The pinned instance leaves: the client goes elsewhere and is pinned there.
  const gone = ids.indexOf(pinned);
  await unregisterRoute(nc, router, registration(gone, true));
  const moved = await chat(cookie);
  t.equal(moved.status, 200, 'no error when the instance has gone');
  const next = moved.body.toString();
  t.not(next, pinned, 'another instance answers');
  t.same(vcapOf(moved), [`__VCAP_ID__=${next}; Path=/; HttpOnly; SameSite=Lax`], 'and the cookie now names it');
  const after = new Set<string>();
  for (let i = 0; i < 6; i++) after.add((await chat(`__VCAP_ID__=${next}`)).body.toString());
  t.same([...after], [next], 'the new pin holds');
  t.equal((await wsReach(router.port, 'chat.localhost', `__VCAP_ID__=${next}`)).instance, next, 'for WebSockets too');

  // Registered again without the option: the route no longer pins.
  for (const i of [0, 1, 2].filter((i) => i !== gone)) await registerRoute(nc, router, registration(i, false));
  await eventually(async () => (await router.routes())['chat.localhost'].every((e) => e.session_affinity === undefined), 'affinity to go from /routes');
  const off = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const reply = await chat(`__VCAP_ID__=${next}`);
    off.add(reply.body.toString());
    t.same(vcapOf(reply), [], 'no cookie once the route has no affinity');
  }
  t.equal(off.size, 2, 'and requests are balanced again');
});
