// `skiff config` through the controller's /config API, on a real
// nats-server, controller and router: keys are checked against the registry
// (bus/settings.ts) before anything is written, a refusal leaves the store as
// it was, and a value set through the API reaches a running router.

import t from 'tap';
import { putSetting } from '../bus/config';
import { ADMIN, startController, testBus } from './controller_harness';
import { skiff, tempHome } from './cli_harness';
import { eventually, startNats } from './harness';
import { startRouter } from './router_harness';

t.test('config through the API and the CLI', async (t) => {
  const nats = await startNats(t);
  const bus = await testBus(t, nats);
  const [controller, router] = await Promise.all([startController(t, nats), startRouter(t, nats)]);
  const api = controller.api;
  api.token = await api.login(ADMIN.email, ADMIN.password);
  const home = tempHome(t);
  const url = `http://127.0.0.1:${controller.port}`;
  t.equal((await skiff(['target', url], home)).code, 0);
  t.equal((await skiff(['login', '--email', ADMIN.email, '--password', ADMIN.password], home)).code, 0);

  await t.test('list shows every key with its default until one is set', async (t) => {
    const all = await api.get('/config');
    t.equal(all.status, 200);
    const lb = all.json().find((e: any) => e.key === 'router.lb_algorithm');
    t.same(lb, { key: 'router.lb_algorithm', value: 'round-robin', set: false, known: true, default: 'round-robin', component: 'router', description: lb.description });
    const health = await api.get('/config?prefix=health.');
    t.same(health.json().map((e: any) => e.key), [
      'health.analysis_interval', 'health.droplet_lost', 'health.flapping_death', 'health.flapping_timeout',
      'health.giveup_crash_number', 'health.max_restart_delay', 'health.min_restart_delay',
    ]);
    const listed = await skiff(['config', 'list', 'stager.'], home);
    t.equal(listed.code, 0, listed.stderr);
    t.match(listed.stdout, /^KEY\s+VALUE\s+FROM\s+NOTE\n/);
    t.match(listed.stdout, /stager\.max_jobs\s+2\s+default/);
  });

  await t.test('set: JSON when it parses, else a string; the router applies it live', async (t) => {
    const set = await skiff(['config', 'set', 'router.lb_algorithm', 'least-connection'], home);
    t.equal(set.code, 0, set.stderr);
    t.equal(set.stdout, 'router.lb_algorithm = "least-connection"\n');
    await eventually(async () => (await router.varz()).lb_algorithm === 'least-connection', 'the router to balance by least connections');
    const get = await skiff(['config', 'get', 'router.lb_algorithm'], home);
    t.equal(get.stdout, 'least-connection\n');
    t.equal((await skiff(['config', 'set', 'router.max_conns_per_backend', '7'], home)).code, 0);
    await eventually(async () => (await router.varz()).max_conns_per_backend === 7, 'the connection limit to apply live');
    const json = await skiff(['config', 'get', 'router.max_conns_per_backend', '--json'], home);
    t.match(JSON.parse(json.stdout), { key: 'router.max_conns_per_backend', value: 7, set: true, default: 500 });
  });

  await t.test('bad values and unknown keys are refused, and nothing is written', async (t) => {
    const before = (await api.get('/config')).json();
    const cases: Array<[string, unknown, RegExp]> = [
      ['router.lb_algorithm', 'fastest', /router\.lb_algorithm must be one of round-robin, least-connection/],
      ['stager.max_jobs', '3', /stager\.max_jobs must be a number \(1-64\)/],
      ['stager.max_jobs', 65, /must be a whole number 1-64/],
      ['dea.max_memory', 1, /unknown setting dea\.max_memory/],
      ['nodot', 1, /invalid setting key "nodot"/],
      ['health.max_restart_delay', 30, /must not be below health\.min_restart_delay \(60\)/],
    ];
    for (const [key, value, error] of cases) {
      const res = await api.put(`/config/${key}`, { value });
      t.equal(res.status, 400, `${key} = ${JSON.stringify(value)}: 400`);
      t.match(res.json().description, error);
    }
    t.equal((await api.put('/config/stager.max_jobs', { nothing: 1 })).status, 400, 'a body without value');
    t.same((await api.get('/config')).json(), before, 'the store is as it was');

    const cli = await skiff(['config', 'set', 'stager.max_jobs', '0'], home);
    t.equal(cli.code, 1);
    t.equal(cli.stderr, 'skiff config: stager.max_jobs must be a whole number 1-64\n', 'one clear line');
    t.equal((await skiff(['config', 'set', 'stager.max_jobs'], home)).code, 2, 'a missing VALUE is a usage error');
    t.equal((await skiff(['config', 'frobnicate'], home)).code, 2, 'an unknown action is a usage error');
    const unknown = await skiff(['config', 'get', 'stager.nothing'], home);
    t.equal(unknown.code, 1);
    t.match(unknown.stderr, /unknown setting stager\.nothing/);
  });

  await t.test('unset brings the default back, everywhere', async (t) => {
    const unset = await skiff(['config', 'unset', 'router.lb_algorithm'], home);
    t.equal(unset.code, 0, unset.stderr);
    t.equal(unset.stdout, 'router.lb_algorithm unset: the default "round-robin" applies\n');
    await eventually(async () => (await router.varz()).lb_algorithm === 'round-robin', 'the router back to round-robin');
    t.equal((await api.delete('/config/router.lb_algorithm')).status, 204, 'unsetting twice is fine');
  });

  await t.test('values written around the API show as ignored', async (t) => {
    await putSetting(bus, 'dea.max_memory_mb', 'lots');
    await putSetting(bus, 'legacy.thing', 1);
    const listed = await skiff(['config', 'list'], home);
    t.match(listed.stdout, /dea\.max_memory_mb\s+lots\s+store\s+ignored: dea\.max_memory_mb must be a number/);
    t.match(listed.stdout, /legacy\.thing\s+1\s+store\s+ignored: no component reads this key/);
    t.equal((await api.delete('/config/legacy.thing')).status, 204, 'an unknown key that is stored may be removed');
    t.equal((await api.get('/config/legacy.thing')).status, 404);
  });

  await t.test('only admins', async (t) => {
    t.equal((await api.post('/users', { email: 'user@example.com', password: 'user-password-1' })).status, 201);
    const token = await api.login('user@example.com', 'user-password-1');
    t.equal((await api.get('/config', { token })).status, 403);
    t.equal((await api.request('PUT', '/config/stager.max_jobs', { body: { value: 3 }, token })).status, 403);
    t.equal((await api.get('/config', { token: null })).status, 401);
  });
});
