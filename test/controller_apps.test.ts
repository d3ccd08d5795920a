// Staging, placement and the app lifecycle end to end: a real controller on a
// real bus, with a stager and DEAs played by the test on that bus.

import t from 'tap';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { gzipSync } from 'node:zlib';
import { startController, testBus, fakeDea, fakeStager } from './controller_harness';
import { ADMIN } from './controller_harness';
import { eventually, sleep, startNats } from './harness';

const PACKAGE = gzipSync(Buffer.from('an app'));
const SHA = createHash('sha256').update(PACKAGE).digest('hex');

t.test('staging, placement and lifecycle', async (t) => {
  const nats = await startNats(t);
  const bus = await testBus(t, nats);
  const deaA = fakeDea(t, bus, { id: 'dea-a', memory: 4096 });
  const deaB = fakeDea(t, bus, { id: 'dea-b', memory: 2048 });
  const deaPy = fakeDea(t, bus, { id: 'dea-py', memory: 8192, runtimes: ['python'] });
  const deaSmall = fakeDea(t, bus, { id: 'dea-small', memory: 100 });
  const deas = [deaA, deaB, deaPy, deaSmall];
  const allStarts = () => deas.flatMap((d) => d.starts.map((s) => ({ ...s, dea: d.id })));
  const clearStarts = () => deas.forEach((d) => (d.starts.length = 0));

  const updated: string[] = [];
  const uriUpdates: any[] = [];
  bus.subscribe('droplet.updated', (m) => updated.push(JSON.parse(new TextDecoder().decode(m.data)).droplet));
  bus.subscribe('dea.update', (m) => uriUpdates.push(JSON.parse(new TextDecoder().decode(m.data))));

  let release: () => void = () => {};
  let stagerReply: (req: any) => object = () => ({ droplet: 'd1', sha1: 'd1', runtime: 'node', framework: 'node', start_command: 'node server.js', log: 'whole log\n' });
  const stager = fakeStager(t, bus, async (req) => {
    bus.publish(`staging.${req.app}.log`, Buffer.from('-----> detecting\n'));
    await new Promise<void>((resolve) => (release = resolve));
    bus.publish(`staging.${req.app}.log`, Buffer.from('-----> done\n'));
    await bus.flush();
    return stagerReply(req);
  });

  const controller = await startController(t, nats, { args: ['--reconcile-interval', '1'] });
  const api = controller.api;
  api.token = await api.login(ADMIN.email, ADMIN.password);
  const created = await api.post('/apps', { name: 'web', instances: 3, env: { GREETING: 'hi' } });
  t.equal(created.status, 201);
  const id: string = created.json().id;

  await t.test('an upload is staged and its log streamed while staging runs', async (t) => {
    t.equal((await api.request('PUT', '/apps/web/application', { raw: PACKAGE })).status, 202);
    await eventually(() => stager.requests.length === 1, 'the stager to get the job');
    t.same(stager.requests[0], { app: id, bits: `${id}.${SHA}`, sha: SHA, manifest: { command: null, env: { GREETING: 'hi' } } });
    t.equal((await api.get('/apps/web')).json().package_state, 'STAGING');

    let body = '';
    let ended = false;
    const req = http.get({ port: controller.port, path: '/apps/web/staging_log', headers: { authorization: `Bearer ${api.token}` } }, (res) => {
      t.equal(res.statusCode, 200);
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (ended = true));
    });
    t.teardown(() => req.destroy());
    await eventually(() => body.includes('detecting'), 'the first log line while staging runs');
    t.notOk(ended, 'the stream stays open while staging runs');
    release();
    await eventually(() => ended, 'the log stream to end with staging');
    t.match(body, /detecting[\s\S]*done/);
    const app = (await api.get('/apps/web')).json();
    t.match(app, { package_state: 'STAGED', droplet: 'd1', staging: { runtime: 'node', framework: 'node', command: 'node server.js' }, state: 'STOPPED' });
    t.match((await api.get('/apps/web/staging_log')).body.toString(), /detecting[\s\S]*done/, 'the last log is kept');
    t.same(allStarts(), [], 'a stopped app is not started by staging');
  });

  await t.test('starting spreads instances over DEAs with the runtime and the memory', async (t) => {
    const res = await api.put('/apps/web', { state: 'STARTED' });
    t.equal(res.status, 200);
    t.equal(res.json().version, 'd1-1');
    await eventually(() => allStarts().length === 3, 'three starts');
    const starts = allStarts().sort((a, b) => a.index - b.index);
    t.same(starts.map((s) => s.dea), ['dea-a', 'dea-b', 'dea-a'], 'most free memory first, then fewest of this app');
    t.match(starts[0], {
      droplet: id, index: 0, name: 'web', uris: ['web.localhost'], runtime: 'node', sha1: 'd1', version: 'd1-1',
      limits: { mem: 256, disk: 1024, fds: 256 }, env: ['GREETING=hi'], users: [ADMIN.email], flapping: false, start_command: 'node server.js',
    });
    t.ok(updated.includes(id), 'droplet.updated published');
    await eventually(async () => (await api.get('/apps/web')).json().runningInstances === 3, 'three running');
    const instances = (await api.get('/apps/web/instances')).json().instances;
    t.same(instances.map((i: any) => [i.index, i.state, i.host]), [[0, 'RUNNING', '127.0.0.1'], [1, 'RUNNING', '127.0.0.1'], [2, 'RUNNING', '127.0.0.1']]);
    const stats = (await api.get('/apps/web/stats')).json();
    t.same(Object.keys(stats), ['0', '1', '2']);
    t.match(stats['1'], { state: 'RUNNING', stats: { usage: { cpu: 1, mem: 2, disk: 3 } } });
  });

  await t.test('scaling starts only new indices and stops only surplus ones', async (t) => {
    clearStarts();
    await api.put('/apps/web', { instances: 5 });
    await eventually(() => allStarts().length === 2, 'two more starts');
    t.same(allStarts().map((s) => s.index).sort(), [3, 4]);
    t.same(allStarts().map((s) => s.version), ['d1-1', 'd1-1'], 'scaling keeps the version');
    deaA.stops.length = 0;
    await api.put('/apps/web', { instances: 2 });
    await eventually(() => deaA.stops.length > 0, 'a dea.stop');
    t.same(deaA.stops[0], { droplet: id, indices: [2, 3, 4] });
    await eventually(async () => (await api.get('/apps/web')).json().runningInstances === 2, 'two running');
  });

  await t.test('health manager requests are honoured only while they still apply', async (t) => {
    clearStarts();
    const app = (await api.get('/apps/web')).json();
    // A health manager (played here) backs index 1 off: the reconcile pass leaves it alone.
    const hm = bus.subscribe('healthmanager.status', (m) => {
      const q = JSON.parse(new TextDecoder().decode(m.data));
      m.respond({ indices: q.droplet === id && q.version === 'd1-1' ? [{ index: 1, since: 1764100000 }] : [] });
    }, { queue: 'hm' });
    t.teardown(() => hm.unsubscribe());
    bus.publish('cloudcontrollers.hm.requests', { droplet: id, op: 'START', last_updated: app.meta.last_updated, version: 'd1-1', indices: [0, 1] });
    await sleep(1500);
    t.same(allStarts(), [], 'a START for indices that run starts nothing');
    for (const dea of [deaA, deaB]) dea.running = dea.running.filter((i) => !(i.droplet === id && i.index === 1));
    await sleep(2500);
    t.same(allStarts(), [], 'index 1 crashed, but it is flapping: reconcile does not restart it');
    bus.publish('cloudcontrollers.hm.requests', { droplet: id, op: 'START', last_updated: app.meta.last_updated, version: 'd1-0', indices: [1] });
    bus.publish('cloudcontrollers.hm.requests', { droplet: id, op: 'START', last_updated: app.meta.last_updated, version: 'd1-1', indices: [1], flapping: true });
    bus.publish('cloudcontrollers.hm.requests', Buffer.from('{"op":"START"'));
    await eventually(() => allStarts().length === 1, 'one start');
    await sleep(300);
    t.equal(allStarts().length, 1, 'the stale version was ignored');
    t.match(allStarts()[0], { index: 1, version: 'd1-1', flapping: true });

    hm.unsubscribe();
    const victim = deaA.running.concat(deaB.running).find((i) => i.droplet === id && i.index === 1)!;
    const stopsBefore = deaA.stops.length;
    bus.publish('cloudcontrollers.hm.requests', { droplet: id, op: 'STOP', last_updated: app.meta.last_updated - 5, instances: [victim.instance] });
    await sleep(300);
    t.equal(deaA.stops.length, stopsBefore, 'STOP with an old last_updated ignored');
    bus.publish('cloudcontrollers.hm.requests', { droplet: id, op: 'STOP', last_updated: app.meta.last_updated, instances: [victim.instance] });
    await eventually(() => deaA.stops.length > stopsBefore, 'the STOP');
    t.same(deaA.stops.at(-1), { droplet: id, instances: [victim.instance] });
    // As a real DEA says once the instance is gone; it ends the placement's grace, so reconcile replaces it.
    bus.publish('droplet.exited', { droplet: id, version: victim.version, instance: victim.instance, index: 1, reason: 'STOPPED', exit_status: 0 });
    await eventually(() => /rejected message.*cloudcontrollers.hm.requests/.test(controller.log()), 'the malformed request logged');
  });

  await t.test('a restarted DEA loses its instances: reconcile places them again', async (t) => {
    await eventually(() => deaA.running.concat(deaB.running).filter((i) => i.droplet === id).length === 2, 'two instances again');
    // Let a reconcile pass see them run: a placement not seen yet counts as pending for a while.
    await sleep(1500);
    clearStarts();
    deaA.running = [];
    deaB.running = [];
    await eventually(() => new Set(allStarts().map((s) => s.index)).size === 2, 'both indices placed again', 8000);
    await sleep(1500);
    t.same(allStarts().map((s) => s.index).sort(), [0, 1], 'each index placed once');
  });

  await t.test('a memory change restarts with a new version and retires the old instances', async (t) => {
    clearStarts();
    const old = deaA.running.concat(deaB.running).filter((i) => i.droplet === id).map((i) => i.instance);
    const res = await api.put('/apps/web', { memory: 512 });
    t.equal(res.json().version, 'd1-2');
    await eventually(() => allStarts().length === 2, 'new version started');
    t.same(allStarts().map((s) => [s.version, s.limits.mem]), [['d1-2', 512], ['d1-2', 512]]);
    await eventually(() => deaA.running.concat(deaB.running).every((i) => !old.includes(i.instance)), 'old instances stopped', 8000);
    t.equal(deaA.running.concat(deaB.running).filter((i) => i.droplet === id).length, 2);
  });

  await t.test('new uris go out as dea.update', async (t) => {
    await api.put('/apps/web', { uris: ['web.localhost', 'www.localhost'] });
    await eventually(() => uriUpdates.length === 1, 'dea.update');
    t.same(uriUpdates[0], { droplet: id, uris: ['web.localhost', 'www.localhost'], session_affinity: false });
  });

  await t.test('session affinity goes to running instances as dea.update, and with every start', async (t) => {
    clearStarts();
    const res = await api.put('/apps/web', { session_affinity: true });
    t.equal(res.status, 200);
    t.equal(res.json().session_affinity, true, 'the app JSON shows it');
    t.equal(res.json().version, 'd1-2', 'no new version: the instances keep running');
    await eventually(() => uriUpdates.length === 2, 'dea.update');
    t.same(uriUpdates[1], { droplet: id, uris: ['web.localhost', 'www.localhost'], session_affinity: true });
    await sleep(500);
    t.same(allStarts(), [], 'nothing restarted');
    await api.put('/apps/web', { instances: 3 });
    await eventually(() => allStarts().length === 1, 'a start for the new index');
    t.equal(allStarts()[0].session_affinity, true, 'a new instance starts with it');
    t.equal((await api.put('/apps/web', { session_affinity: 'yes' })).status, 400);
    await api.put('/apps/web', { session_affinity: false, instances: 2 });
    await eventually(() => uriUpdates.length === 3, 'dea.update');
    t.equal(uriUpdates[2].session_affinity, false, 'and off again');
    t.equal((await api.get('/apps/web')).json().session_affinity, false);
    const said = (await api.get('/apps/web/events')).json().map((e: any) => e.description);
    t.ok(said.includes('session affinity on') && said.includes('session affinity off'), 'skiff events tells');
  });

  await t.test('crashes are recorded per app', async (t) => {
    bus.publish('droplet.exited', { droplet: id, version: 'd1-2', instance: 'gone-1', index: 0, reason: 'CRASHED', exit_status: 137, exit_description: 'out of memory', crash_timestamp: 1764100100 });
    bus.publish('droplet.exited', { droplet: id, version: 'd1-2', instance: 'gone-2', index: 1, reason: 'STOPPED', exit_status: 0 });
    await eventually(async () => (await api.get('/apps/web/crashes')).json().length === 1, 'one crash');
    t.same((await api.get('/apps/web/crashes')).json(), [{ instance: 'gone-1', index: 0, since: 1764100100, reason: 'out of memory', exit_status: 137 }]);
  });

  await t.test('files of an instance come from its DEA', async (t) => {
    const asked: any[] = [];
    const sub = bus.subscribe('dea.*.files', (m) => {
      const q = JSON.parse(new TextDecoder().decode(m.data));
      asked.push({ subject: m.subject, ...q });
      if (q.path === '' || q.path === 'logs') m.respond({ type: 'directory', path: q.path, entries: [{ name: 'stdout.log', type: 'file', size: 11 }] });
      else if (q.path === 'logs/stdout.log') {
        const data = Buffer.from('hello world');
        const start = q.offset < 0 ? Math.max(0, data.length + q.offset) : q.offset;
        const slice = data.subarray(start, start + q.length);
        m.respond({ type: 'file', path: q.path, size: data.length, offset: start, data_base64: slice.toString('base64') });
      } else m.respond({ error: 'no such file', code: 'not_found' });
    });
    t.teardown(() => sub.unsubscribe());
    const dir = await api.get('/apps/web/instances/0/files/logs');
    t.equal(dir.status, 200);
    t.same(dir.json().entries, [{ name: 'stdout.log', type: 'file', size: 11 }]);
    const owner = deaA.running.concat(deaB.running).find((i) => i.droplet === id && i.index === 0)!;
    t.match(asked[0], { droplet: id, instance: owner.instance, path: 'logs' });
    const file = await api.get('/apps/web/instances/0/files/logs/stdout.log');
    t.equal(file.body.toString(), 'hello world');
    t.equal((await api.get('/apps/web/instances/0/files/logs/stdout.log?tail=5')).body.toString(), 'world');
    t.equal((await api.get('/apps/web/instances/0/files/missing')).status, 404);
    t.equal((await api.get('/apps/web/instances/9/files/logs')).status, 404, 'no such instance');
  });

  await t.test('a failed staging keeps the old droplet running', async (t) => {
    clearStarts();
    stagerReply = () => ({ error: 'no start command found', log: 'nope\n' });
    t.equal((await api.request('PUT', '/apps/web/application', { raw: gzipSync(Buffer.from('v2')) })).status, 202);
    await eventually(() => stager.requests.length === 2, 'second job');
    release();
    await eventually(async () => (await api.get('/apps/web')).json().package_state === 'FAILED', 'FAILED');
    const app = (await api.get('/apps/web')).json();
    t.match(app, { staging_error: 'no start command found', droplet: 'd1', version: 'd1-2', state: 'STARTED' });
    t.same(allStarts(), [], 'nothing restarted');
  });

  await t.test('a new droplet for a started app replaces its instances once the new ones run', async (t) => {
    clearStarts();
    const old = deaA.running.concat(deaB.running).filter((i) => i.droplet === id).map((i) => i.instance);
    t.equal(old.length, 2);
    stagerReply = () => ({ droplet: 'd2', sha1: 'd2', runtime: 'node', framework: 'node', start_command: 'node server.js' });
    t.equal((await api.request('PUT', '/apps/web/application', { raw: gzipSync(Buffer.from('v3')) })).status, 202);
    await eventually(() => stager.requests.length === 3, 'third job');
    release();
    await eventually(() => allStarts().length === 2, 'the new droplet started');
    t.same(allStarts().map((s) => [s.sha1, s.version]), [['d2', 'd2-3'], ['d2', 'd2-3']]);
    await eventually(() => deaA.running.concat(deaB.running).every((i) => !old.includes(i.instance)), 'old instances stopped', 8000);
    t.match((await api.get('/apps/web')).json(), { droplet: 'd2', version: 'd2-3', package_state: 'STAGED', runningInstances: 2 });
  });

  await t.test('a python app goes only to a DEA offering python', async (t) => {
    stagerReply = () => ({ droplet: 'p1', sha1: 'p1', runtime: 'python', framework: 'python', start_command: 'python app.py' });
    await api.post('/apps', { name: 'py', instances: 2, memory: 1024 });
    await api.request('PUT', '/apps/py/application', { raw: PACKAGE });
    await eventually(() => stager.requests.length === 4, 'fourth job');
    release();
    await eventually(async () => (await api.get('/apps/py')).json().package_state === 'STAGED', 'STAGED');
    clearStarts();
    await api.put('/apps/py', { state: 'STARTED' });
    await eventually(() => allStarts().length === 2, 'two starts');
    t.same(allStarts().map((s) => s.dea), ['dea-py', 'dea-py']);
  });

  await t.test('no DEA with enough memory: nothing is started, the app stays wanted', async (t) => {
    clearStarts();
    await api.put('/apps/web', { state: 'STOPPED' });
    await eventually(() => deaA.stops.some((s) => s.droplet === id && Object.keys(s).length === 1), 'dea.stop {droplet}');
    t.same(deaA.running.concat(deaB.running).filter((i) => i.droplet === id), []);
    const big = await api.put('/apps/web', { memory: 8000, state: 'STARTED' });
    t.equal(big.status, 200);
    await sleep(1500);
    t.same(allStarts(), [], 'no node DEA has 8000 MB');
    t.match(controller.log(), /no DEA with room/);
  });

  await t.test('deleting a started app stops it', async (t) => {
    await api.put('/apps/web', { memory: 256 });
    await eventually(() => deaA.running.concat(deaB.running).filter((i) => i.droplet === id).length === 2, 'running again');
    t.equal((await api.delete('/apps/web')).status, 204);
    await eventually(() => deaA.running.concat(deaB.running).filter((i) => i.droplet === id).length === 0, 'all stopped');
  });
});
