// Controllers share all state through JetStream: side by side or restarted
// they serve the same apps and accept each other's tokens. And the API is
// reachable through the router as api.<domain>.

import t from 'tap';
import * as http from 'node:http';
import { gzipSync } from 'node:zlib';
import { ADMIN, fakeDea, fakeStager, startController, testBus } from './controller_harness';
import { eventually, sleep, startNats } from './harness';
import { startRouter } from './router_harness';

t.test('two controllers on one store', async (t) => {
  const nats = await startNats(t);
  const [a, b] = await Promise.all([startController(t, nats), startController(t, nats)]);
  a.api.token = await a.api.login(ADMIN.email, ADMIN.password);
  b.api.token = a.api.token;

  t.equal((await b.api.get('/apps')).status, 200, 'a token from one controller works on the other');
  t.equal((await a.api.post('/users', { email: 'ann@example.com', password: 'ann-password' })).status, 201);
  const annToken = await b.api.login('ann@example.com', 'ann-password');
  t.equal((await a.api.post('/apps', { name: 'shared' }, { token: annToken })).status, 201);
  t.match((await b.api.get('/apps/shared', { token: annToken })).json(), { name: 'shared', owner: 'ann@example.com' });
  t.equal((await b.api.post('/apps', { name: 'shared' }, { token: annToken })).status, 409, 'the name is taken on both');

  // Concurrent read-modify-writes of different fields through different controllers: none is lost.
  for (let round = 1; round <= 5; round++) {
    const [ra, rb] = await Promise.all([
      a.api.put('/apps/shared', { memory: 100 + round }, { token: annToken }),
      b.api.put('/apps/shared', { instances: round }, { token: annToken }),
    ]);
    t.equal(ra.status, 200);
    t.equal(rb.status, 200);
    t.match((await a.api.get('/apps/shared', { token: annToken })).json(), { memory: 100 + round, instances: round }, `round ${round}`);
  }

  await a.stop();
  const c = await startController(t, nats);
  t.match((await c.api.get('/apps/shared', { token: annToken })).json(), { name: 'shared', memory: 105 }, 'a restarted controller serves the same state and tokens');
  t.notMatch(c.log(), /first admin created/, 'the admin is created once');
});

t.test('the API registers as api.<domain> with routers, also with one that starts later', async (t) => {
  const nats = await startNats(t);
  const controller = await startController(t, nats, { args: ['--domain', 'example.test'] });
  const router = await startRouter(t, nats);
  // The controller re-registers every 20 s; a router that starts later learns the route from the answer to its router.start.
  await eventually(async () => {
    const routes = await router.routes();
    return (routes['api.example.test'] ?? []).some((e: any) => e.address === `127.0.0.1:${controller.port}`);
  }, 'api.example.test routed to the controller', 5000);
  const body = await new Promise<string>((resolve, reject) => {
    http.get({ port: router.port, path: '/info', headers: { host: 'api.example.test' } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
  t.equal(JSON.parse(body).name, 'skiff');
  await controller.stop();
  await eventually(async () => ((await router.routes())['api.example.test'] ?? []).length === 0, 'the route gone after the controller stops', 5000);
});

t.test('two controllers reconciling place a lost instance once, not twice', async (t) => {
  const nats = await startNats(t);
  const bus = await testBus(t, nats);
  const dea = fakeDea(t, bus, { id: 'dea-1', memory: 4096, advertiseEveryMs: 500, reportAfterMs: 1500 });
  fakeStager(t, bus, () => ({ droplet: 'd1', sha1: 'd1', runtime: 'node', framework: 'node', start_command: 'node s.js' }));
  const args = ['--reconcile-interval', '0.5'];
  const [a, b] = await Promise.all([startController(t, nats, { args }), startController(t, nats, { args })]);
  a.api.token = await a.api.login(ADMIN.email, ADMIN.password);
  await a.api.post('/apps', { name: 'web', instances: 2 });
  await a.api.request('PUT', '/apps/web/application', { raw: gzipSync(Buffer.from('app')) });
  await eventually(async () => (await a.api.get('/apps/web')).json().package_state === 'STAGED', 'staged');
  await a.api.put('/apps/web', { state: 'STARTED' });
  await eventually(() => dea.running.length === 2, 'two running');
  // Let a reconcile pass see them running: a start never seen on a DEA gets 20 s before it counts as lost.
  await sleep(1500);
  dea.starts.length = 0;
  dea.running = [];
  await eventually(() => dea.running.length === 2, 'both placed again', 8000);
  await sleep(2000);
  t.same(dea.starts.map((s) => s.index).sort(), [0, 1], 'each index placed once by the two controllers together');
  t.ok(b.log().includes('controller listening'));
});

t.test('a staging run by one controller streams its log through another', async (t) => {
  const nats = await startNats(t);
  const bus = await testBus(t, nats);
  let release: () => void = () => {};
  fakeStager(t, bus, async (req) => {
    bus.publish(`staging.${req.app}.log`, Buffer.from('-----> detecting\n'));
    await new Promise<void>((resolve) => (release = resolve));
    bus.publish(`staging.${req.app}.log`, Buffer.from('-----> done\n'));
    await bus.flush();
    return { droplet: 'd1', sha1: 'd1', runtime: 'node', framework: 'node', start_command: 'node s.js' };
  });
  const [a, b] = await Promise.all([startController(t, nats), startController(t, nats)]);
  a.api.token = await a.api.login(ADMIN.email, ADMIN.password);
  await a.api.post('/apps', { name: 'web' });
  t.equal((await a.api.request('PUT', '/apps/web/application', { raw: gzipSync(Buffer.from('app')) })).status, 202);
  let body = '';
  let ended = false;
  const req = http.get({ port: b.port, path: '/apps/web/staging_log', headers: { authorization: `Bearer ${a.api.token}` } }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c: string) => (body += c));
    res.on('end', () => (ended = true));
  });
  t.teardown(() => req.destroy());
  // The reader may come after the first line went out: what matters is that it follows the rest live and ends.
  await sleep(500);
  t.notOk(ended, 'open while staging runs elsewhere');
  release();
  await eventually(() => body.includes('done'), 'the next line, live', 5000);
  await eventually(() => ended, 'the stream ends once the app is staged', 5000);
  t.equal((await b.api.get('/apps/web', { token: a.api.token })).json().package_state, 'STAGED');
  t.match((await b.api.get('/apps/web/staging_log', { token: a.api.token })).body.toString(), /detecting[\s\S]*done/, 'the kept log is the whole log');
});

t.test('with no advertised DEA the controller asks dea.discover', async (t) => {
  const nats = await startNats(t);
  const bus = await testBus(t, nats);
  fakeStager(t, bus, () => ({ droplet: 'd1', sha1: 'd1', runtime: 'node', framework: 'node', start_command: 'node s.js' }));
  const discovered: any[] = [];
  const starts: any[] = [];
  bus.subscribe('dea.discover', (m) => {
    discovered.push(JSON.parse(new TextDecoder().decode(m.data)));
    m.respond({ id: 'dea-quiet', ip: '127.0.0.1', port: 1 });
  });
  bus.subscribe('dea.dea-quiet.start', (m) => starts.push(JSON.parse(new TextDecoder().decode(m.data))));
  const c = await startController(t, nats);
  c.api.token = await c.api.login(ADMIN.email, ADMIN.password);
  await c.api.post('/apps', { name: 'web', memory: 128 });
  await c.api.request('PUT', '/apps/web/application', { raw: gzipSync(Buffer.from('app')) });
  await eventually(async () => (await c.api.get('/apps/web')).json().package_state === 'STAGED', 'staged');
  await c.api.put('/apps/web', { state: 'STARTED' });
  await eventually(() => starts.length === 1, 'the start goes to the DEA that answered');
  t.match(discovered[0], { limits: { mem: 128 }, runtime: 'node', sha: 'd1' });
  t.equal(starts[0].index, 0);
});

t.test('a staging whose controller died is marked FAILED by another', async (t) => {
  const nats = await startNats(t);
  const bus = await testBus(t, nats);
  // A stager that never answers: the job outlives the controller that sent it.
  const stager = fakeStager(t, bus, () => new Promise<object>(() => {}));
  const args = ['--reconcile-interval', '0.5', '--staging-timeout', '1'];
  const a = await startController(t, nats, { args: ['--reconcile-interval', '0.5', '--staging-timeout', '30'] });
  a.api.token = await a.api.login(ADMIN.email, ADMIN.password);
  await a.api.post('/apps', { name: 'web' });
  await a.api.request('PUT', '/apps/web/application', { raw: gzipSync(Buffer.from('app')) });
  await eventually(() => stager.requests.length === 1, 'the job sent');
  await a.stop();
  const b = await startController(t, nats, { args });
  let app: any;
  await eventually(async () => {
    app = (await b.api.get('/apps/web', { token: a.api.token })).json();
    return app.package_state === 'FAILED';
  }, 'the lost job marked FAILED', 8000);
  t.match(app.staging_error, /interrupted/);
});
