// Data services through a real controller on a real bus, with a DEA, a
// stager and a services node played by the test on that bus: offerings,
// provisioning, binding as the app's `services` (credentials in every
// placement, an instance placed again keeps its binding, a rolling restart
// on each change), unbinding, deleting (refused while bound unless forced),
// health, ownership, and a controller stopped half-way whose successor
// finishes the job; no credential in an event or the controller's log.

import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { ADMIN, fakeDea, fakeServicesNode, fakeStager, startController, testBus, type ControllerProcess } from './controller_harness';
import { eventually, startNats } from './harness';

const PACKAGE = gzipSync(Buffer.from('an app'));
const SHA = createHash('sha256').update(PACKAGE).digest('hex');
const CONTROLLER_ARGS = ['--reconcile-interval', '0.5', '--service-timeout', '2'];

t.test('services: offerings, provisioning, binding, unbinding, deleting', async (top) => {
  const t = top;
  const nats = await startNats(t);
  const bus = await testBus(t, nats);
  const dea = fakeDea(t, bus, { id: 'dea-1', memory: 4096 });
  fakeStager(t, bus, (req) => ({ droplet: `d-${req.app}`, sha1: `d-${req.app}`, runtime: 'node', framework: 'node', start_command: 'node server.js', log: '' }));
  let controller: ControllerProcess = await startController(t, nats, { args: CONTROLLER_ARGS });
  let api = controller.api;
  api.token = await api.login(ADMIN.email, ADMIN.password);
  const passwords = () => [...node.bindings.values()].map((c) => c.password).filter((p): p is string => typeof p === 'string');
  const seenPasswords = new Set<string>();
  const earlierLogs: string[] = [];
  const remember = () => passwords().forEach((p) => seenPasswords.add(p));

  await t.test('without a services node: one clear line, nothing left', async (t) => {
    const offerings = await api.get('/info/services');
    t.equal(offerings.status, 503);
    t.equal(offerings.json().description, 'no services node is running: give a node the services role (skiff role add services)');
    t.equal((await api.post('/services', { name: 'cache', service: 'redis' })).status, 503);
    t.same((await api.get('/services')).json(), [], 'no half-made service');
  });

  const node = fakeServicesNode(t, bus);

  await t.test('offerings and provisioning', async (t) => {
    const offerings = (await api.get('/info/services')).json();
    t.same(offerings.services.map((s: any) => s.label), ['redis', 'postgresql', 'filesystem']);
    t.equal((await api.get('/info/services', { token: null })).status, 401, 'for logged-in users');
    const created = await api.post('/services', { name: 'cache', service: 'redis' });
    t.equal(created.status, 201);
    t.match(created.json(), { name: 'cache', service: 'redis', plan: 'free', owner: ADMIN.email, node: 'svc-1', state: 'ready', bound_apps: [], health: { healthy: true, detail: 'running' } });
    t.equal(node.instances.size, 1, 'one instance on the node');
    t.equal((await api.post('/services', { name: 'db', service: 'postgresql', plan: 'large' })).status, 201);
    const taken = await api.post('/services', { name: 'cache', service: 'postgresql' });
    t.same([taken.status, taken.json().description], [409, 'the service name cache is taken']);
    const unknown = await api.post('/services', { name: 'x', service: 'mysql' });
    t.same([unknown.status, unknown.json().description], [400, 'unknown service mysql (skiff marketplace lists them)']);
    const plan = await api.post('/services', { name: 'x', service: 'redis', plan: 'huge' });
    t.same([plan.status, plan.json().description], [400, 'redis has no plan huge (its plans: free, large)']);
    t.same((await api.get('/services')).json().map((s: any) => s.name), ['cache', 'db']);
    t.equal(node.instances.size, 2, 'nothing provisioned for the refused ones');
  });

  let appId = '';
  const startsOf = (version: string) => dea.starts.filter((s) => s.droplet === appId && s.version === version);

  await t.test('an app created with a service gets its credentials at every placement', async (t) => {
    const created = await api.post('/apps', { name: 'web', instances: 2, services: ['cache'] });
    t.equal(created.status, 201);
    t.same(created.json().services, ['cache'], 'the app shows its services by name');
    appId = created.json().id;
    t.same(node.requests.filter((r) => r.op === 'bind').map((r) => r.body.app), [appId], 'bound when created');
    t.type(node.requests.find((r) => r.op === 'bind')!.body.app_uid, 'number', 'with the app\'s uid');
    t.equal((await api.request('PUT', '/apps/web/application', { raw: PACKAGE, headers: { 'x-skiff-sha256': SHA } })).status, 202);
    await eventually(async () => (await api.get('/apps/web')).json().package_state === 'STAGED', 'staged');
    t.equal((await api.put('/apps/web', { state: 'STARTED' })).status, 200);
    await eventually(() => startsOf(`d-${appId}-1`).length === 2, 'two starts');
    const [start] = startsOf(`d-${appId}-1`);
    const credentials = node.bindings.get(`${[...node.instances.keys()][0]} ${appId}`);
    t.same(start.services, [{ name: 'cache', label: 'redis', plan: 'free', tags: ['redis', 'key-value', 'nosql'], credentials }], 'CF v1\'s shape, the node\'s credentials');
    remember();
  });

  await t.test('binding a second service restarts the app, rolling; an instance placed again keeps its bindings', async (t) => {
    const res = await api.put('/apps/web', { services: ['cache', 'db'] });
    t.equal(res.status, 200);
    t.same(res.json().services, ['cache', 'db']);
    t.equal(res.json().version, `d-${appId}-2`, 'a new version');
    await eventually(() => startsOf(`d-${appId}-2`).length === 2, 'the new version started');
    t.same(startsOf(`d-${appId}-2`)[0].services.map((s: any) => s.name), ['cache', 'db']);
    await eventually(() => !dea.running.some((i) => i.droplet === appId && i.version === `d-${appId}-1`), 'the old version stopped once the new runs');
    remember();
    const binds = node.requests.filter((r) => r.op === 'bind').length;
    // The health manager's case: an instance gone, placed anew by the controller.
    const lost = dea.running.find((i) => i.droplet === appId && i.index === 1)!;
    dea.running = dea.running.filter((i) => i !== lost);
    const before = startsOf(`d-${appId}-2`).length;
    await eventually(() => startsOf(`d-${appId}-2`).length === before + 1, 'the lost index placed again', 10_000);
    const again = startsOf(`d-${appId}-2`).at(-1);
    t.equal(again.index, 1);
    t.same(again.services, startsOf(`d-${appId}-2`)[0].services, 'with the same credentials');
    t.equal(node.requests.filter((r) => r.op === 'bind').length, binds, 'from the controller\'s bucket: no new bind');
  });

  await t.test('unbinding restarts the app without it and revokes the app\'s access', async (t) => {
    const res = await api.put('/apps/web', { services: ['db'] });
    t.same(res.json().services, ['db']);
    await eventually(() => startsOf(`d-${appId}-3`).length === 2, 'the new version started');
    t.same(startsOf(`d-${appId}-3`)[0].services.map((s: any) => s.name), ['db'], 'without cache');
    t.ok(node.requests.some((r) => r.op === 'unbind' && r.body.app === appId), 'the node was told');
    t.equal([...node.bindings.keys()].filter((k) => k.endsWith(appId)).length, 1, 'one binding left on the node');
  });

  await t.test('deleting a bound service: 409, unless forced', async (t) => {
    const refused = await api.delete('/services/db');
    t.same([refused.status, refused.json().description], [409, 'service db is bound to web: unbind it first (skiff unbind-service db APP), or delete it with --force']);
    t.equal((await api.delete('/services/db?force=1')).status, 204);
    t.same((await api.get('/apps/web')).json().services, [], 'the app lost it');
    await eventually(() => startsOf(`d-${appId}-4`).length === 2, 'and restarted without it');
    t.same(startsOf(`d-${appId}-4`)[0].services, []);
    t.ok(node.requests.some((r) => r.op === 'deprovision'), 'deprovisioned');
    t.equal(node.instances.size, 1, 'only cache is left on the node');
    t.same((await api.get('/services')).json().map((s: any) => s.name), ['cache']);
  });

  await t.test('health from the node; ownership like apps', async (t) => {
    node.healthy.set([...node.instances.keys()][0]!, false);
    t.match((await api.get('/services/cache')).json(), { health: { healthy: false, detail: 'redis-server is down' } });
    node.healthy.clear();
    t.equal((await api.post('/users', { email: 'bob@example.com', password: 'bob-secret-1' })).status, 201);
    const bob = controller.api;
    const bobToken = await bob.login('bob@example.com', 'bob-secret-1');
    const asBob = { token: bobToken };
    t.same((await api.request('GET', '/services', asBob)).json(), [], 'bob sees none of the admin\'s');
    t.equal((await api.request('DELETE', '/services/cache', asBob)).status, 403);
    t.equal((await api.request('POST', '/apps', { ...asBob, body: { name: 'bobs', services: ['cache'] } })).status, 403, 'nor binds them');
    t.equal((await api.get('/apps/bobs')).status, 404, 'and no app was left');
    t.equal((await api.request('POST', '/services', { ...asBob, body: { name: 'bobs-cache', service: 'redis' } })).status, 201);
    t.same((await api.get('/services?all=1')).json().map((s: any) => [s.name, s.owner]), [['bobs-cache', 'bob@example.com'], ['cache', ADMIN.email]], 'an admin lists all');
    t.same((await api.get('/services?group=bob@example.com')).json().map((s: any) => s.name), ['bobs-cache']);
  });

  await t.test('deleting an app unbinds it', async (t) => {
    t.equal((await api.post('/apps', { name: 'other', services: ['cache'] })).status, 201);
    const otherId = (await api.get('/apps/other')).json().id;
    t.equal((await api.delete('/apps/other')).status, 204);
    await eventually(() => node.requests.some((r) => r.op === 'unbind' && r.body.app === otherId), 'the node is told');
  });

  await t.test('a node that is down: the app is deleted all the same, and the reconcile pass unbinds it later', async (t) => {
    t.equal((await api.post('/apps', { name: 'third', services: ['cache'] })).status, 201);
    const thirdId = (await api.get('/apps/third')).json().id;
    node.down = true;
    t.equal((await api.delete('/apps/third')).status, 204);
    t.notOk(node.requests.some((r) => r.op === 'unbind' && r.body.app === thirdId));
    node.down = false;
    await eventually(() => node.requests.some((r) => r.op === 'unbind' && r.body.app === thirdId), 'the sweep unbinds it', 15_000);
    t.notOk([...node.bindings.keys()].some((k) => k.endsWith(thirdId)), 'nothing of it left on the node');
  });

  await t.test('a provisioning whose answer never came is finished by the next controller', async (t) => {
    node.silent = true;
    const late = await api.post('/services', { name: 'late', service: 'redis' });
    t.equal(late.status, 502);
    t.match(late.json().description, /did not answer within 2 s: late stays listed as being created/);
    t.match((await api.get('/services/late')).json(), { state: 'provisioning', node: null, health: { healthy: null } });
    t.equal((await api.delete('/services/late')).status, 409, 'not deletable half-made');
    await controller.stop();
    earlierLogs.push(controller.log());
    node.silent = false;
    // Torn down with the whole test, not this step.
    controller = await startController(top, nats, { args: CONTROLLER_ARGS });
    api = controller.api;
    api.token = await api.login(ADMIN.email, ADMIN.password);
    await eventually(async () => (await api.get('/services/late')).json().state === 'ready', 'the new controller finishes it', 20_000);
    const ids = [...node.instances.entries()].filter(([, i]) => i.name === 'late').map(([id]) => id);
    t.equal(ids.length, 1, 'one backend, asked twice');
    t.equal((await api.delete('/services/late')).status, 204);
  });

  await t.test('no credential in an event or the controller\'s log', async (t) => {
    const events = JSON.stringify((await api.get('/apps/web/events')).json());
    t.match(events, /bound service cache \(redis, free\)/);
    t.match(events, /unbound service cache/);
    t.match(events, /unbound service db \(the service is being deleted\)/);
    t.ok(seenPasswords.size >= 2, 'passwords were handed out');
    for (const password of seenPasswords) {
      t.notOk(events.includes(password), 'not in events');
      t.notOk([...earlierLogs, controller.log()].some((log) => log.includes(password)), 'not in the logs');
    }
  });
});
