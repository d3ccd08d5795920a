// The health manager end to end: a real nats-server with JetStream, a real
// controller (reconciling every second, so that it would defeat any backoff
// it did not leave to the health manager), router, DEA and two `skiff health`
// processes, with tiny health.* settings written to the config store while
// they run.

import t from 'tap';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { gzipSync } from 'node:zlib';
import { putSetting } from '../bus/config';
import { skiff, tempHome } from './cli_harness';
import { requestAll } from '../bus/connection';
import { ADMIN, fakeStager, startController, testBus } from './controller_harness';
import { makeDataDir, putDroplet, startDea } from './dea_harness';
import { startHealth } from './health_harness';
import { eventually, sleep, startNats } from './harness';
import { startRouter } from './router_harness';

const WEB_APP = `require('http').createServer((q, s) => s.end(JSON.stringify({ pid: process.pid })))
  .listen(Number(process.env.PORT), process.env.VCAP_APP_HOST);`;
const CRASHING_APP = 'setTimeout(() => process.exit(1), 100);';

const SETTINGS = {
  // Above the DEA's 10 s heartbeat period, so that nothing is lost by mistake.
  droplet_lost: 20,
  flapping_timeout: 60,
  flapping_death: 1,
  min_restart_delay: 1,
  max_restart_delay: 4,
  giveup_crash_number: 4,
  analysis_interval: 0.5,
};

t.test('skiff health: a bad argument is one clear line and exit 2', async (t) => {
  const run = await skiff(['health', '--min-restart-delay', 'soon'], tempHome(t));
  t.equal(run.code, 2);
  t.equal(run.stderr, 'skiff health: --min-restart-delay must be a number, got "soon"\n');
});

t.test('health manager: restarts, backoff, give-up, two managers', async (t) => {
  const nats = await startNats(t);
  const bus = await testBus(t, nats);
  const decoder = new TextDecoder();
  const hmRequests: Array<{ at: number; body: any }> = [];
  const exits: Array<{ at: number; body: any }> = [];
  bus.subscribe('cloudcontrollers.hm.requests', (m) => hmRequests.push({ at: Date.now(), body: JSON.parse(decoder.decode(m.data)) }));
  bus.subscribe('droplet.exited', (m) => exits.push({ at: Date.now(), body: JSON.parse(decoder.decode(m.data)) }));
  await bus.flush();

  const dropletOf = new Map<string, string>();
  fakeStager(t, bus, (request) => {
    const sha1 = dropletOf.get(request.app)!;
    return { droplet: sha1, sha1, runtime: 'node', framework: 'node', start_command: 'node server.js', log: '' };
  });
  const [webSha, crashSha] = await Promise.all([
    putDroplet(bus, { 'server.js': WEB_APP }, 'node server.js'),
    putDroplet(bus, { 'server.js': CRASHING_APP }, 'node server.js'),
  ]);

  const first = 42000 + Math.floor(Math.random() * 1000) * 10;
  const [controller, router, hmA, hmB] = await Promise.all([
    startController(t, nats, { args: ['--reconcile-interval', '1'] }),
    startRouter(t, nats),
    startHealth(t, nats),
    startHealth(t, nats),
  ]);
  const dea = startDea(t, nats.url, makeDataDir(t), ['--port-range', `${first}-${first + 9}`, '--start-timeout', '5', '--stop-grace', '1']);
  if (process.env.HEALTH_TEST_LOGS) {
    t.teardown(() => {
      const { writeFileSync } = require('node:fs') as typeof import('node:fs');
      for (const [name, log] of [['controller', controller.log()], ['router', router.log()], ['dea', dea.log()], ['hmA', hmA.log()], ['hmB', hmB.log()]] as const) {
        writeFileSync(`${process.env.HEALTH_TEST_LOGS}/${name}.log`, log);
      }
    });
  }
  const api = controller.api;
  api.token = await api.login(ADMIN.email, ADMIN.password);

  await t.test('settings written to the config store apply while the managers run', async (t) => {
    await putSetting(bus, 'health.giveup_crash_number', 'lots');
    await eventually(() => /ignoring invalid setting, using the default key=health.giveup_crash_number/.test(hmA.log()), 'the bad value reported', 5000);
    for (const [key, value] of Object.entries(SETTINGS)) await putSetting(bus, `health.${key}`, value);
    for (const hm of [hmA, hmB]) {
      const expected = /settings changed dropletLostMs=20000 flappingTimeoutMs=60000 flappingDeath=1 minRestartDelayMs=1000 maxRestartDelayMs=4000 giveupCrashNumber=4 analysisIntervalMs=500$/m;
      await eventually(() => expected.test(hm.log()), 'the new settings in force', 5000);
    }
    t.pass('both managers took the new settings');
  });

  await t.test('malformed messages are counted and logged, not fatal', async (t) => {
    bus.publish('dea.heartbeat', Buffer.from('{"dea": 7, "droplets": "secret-token-123"}'));
    bus.publish('droplet.exited', Buffer.from('not json secret-token-123'));
    await eventually(() => /rejected message subject=dea.heartbeat error="dea must be a non-empty string"/.test(hmA.log()), 'the heartbeat rejected', 5000);
    await eventually(() => /rejected message subject=droplet.exited/.test(hmA.log()), 'the exit rejected', 5000);
    t.notMatch(hmA.log() + hmB.log(), /secret-token-123/, 'the bodies are not logged');
  });

  const push = async (name: string, sha1: string): Promise<string> => {
    const created = await api.post('/apps', { name, instances: 1, memory: 64 });
    if (created.status !== 201) throw new Error(`create ${name}: ${created.status} ${created.body}`);
    const id: string = created.json().id;
    dropletOf.set(id, sha1);
    const pkg = gzipSync(Buffer.from(name));
    const upload = await api.request('PUT', `/apps/${name}/application`, { raw: pkg, headers: { 'x-skiff-sha256': createHash('sha256').update(pkg).digest('hex') } });
    if (upload.status !== 202) throw new Error(`upload ${name}: ${upload.status} ${upload.body}`);
    await eventually(async () => (await api.get(`/apps/${name}`)).json().package_state === 'STAGED', `${name} staged`);
    const started = await api.put(`/apps/${name}`, { state: 'STARTED' });
    if (started.status !== 200) throw new Error(`start ${name}: ${started.status} ${started.body}`);
    return id;
  };
  const viaRouter = async (host: string): Promise<{ status: number; pid?: number }> => {
    // fetch() would send its own Host header; the router routes on it.
    return new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: router.port, path: '/', headers: { host }, agent: false, timeout: 2000 }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve(res.statusCode === 200 ? { status: 200, pid: JSON.parse(text).pid } : { status: res.statusCode ?? 0 }));
        res.on('error', () => resolve({ status: 0 }));
      });
      req.on('error', () => resolve({ status: 0 }));
      req.on('timeout', () => req.destroy());
    });
  };
  const startsOf = (id: string) => hmRequests.filter((r) => r.body.droplet === id && r.body.op === 'START');

  const webId = await push('web', webSha);
  let webPid = 0;
  await eventually(async () => ((webPid = (await viaRouter('web.localhost')).pid ?? 0)) > 0, 'web answering through the router', 15_000);

  await t.test('a killed app process is back and routed within 15 s, asked for once by two managers', async (t) => {
    const killedAt = Date.now();
    process.kill(webPid, 'SIGKILL');
    let pid = 0;
    await eventually(async () => {
      pid = (await viaRouter('web.localhost')).pid ?? 0;
      return pid > 0 && pid !== webPid;
    }, 'a new web process answering through the router', 15_000);
    t.ok(Date.now() - killedAt < 15_000, `back after ${Date.now() - killedAt} ms`);
    await sleep(1000);
    const starts = startsOf(webId);
    t.equal(starts.length, 1, 'one START, not one per manager');
    t.match(starts[0]?.body, { op: 'START', indices: [0], flapping: false, version: `${webSha}-1` });
    const instances = (await api.get('/apps/web/instances')).json().instances;
    t.equal(instances.filter((i: any) => i.state === 'RUNNING' || i.state === 'STARTING').length, 1, 'exactly one instance: the controller did not start a second one');
    webPid = pid;
  });

  await t.test('healthmanager.health counts the running instances of a version', async (t) => {
    const replies = await requestAll<any>(bus, 'healthmanager.health', { droplets: [{ droplet: webId, version: `${webSha}-1` }, { droplet: webId, version: 'old-1' }] }, { windowMs: 500 });
    t.same(replies.sort((a, b) => a.version.localeCompare(b.version)), [
      { droplet: webId, version: `${webSha}-1`, healthy: 1 },
      { droplet: webId, version: 'old-1', healthy: 0 },
    ], 'one reply per droplet, from one manager');
  });

  await t.test('a START for an index that runs already starts nothing (the controller checks)', async (t) => {
    const startsBefore = (dea.log().match(/starting instance app=\S+ name=web /g) ?? []).length;
    bus.publish('cloudcontrollers.hm.requests', { droplet: webId, op: 'START', last_updated: 0, version: `${webSha}-1`, indices: [0], flapping: false });
    await sleep(1500);
    t.equal((dea.log().match(/starting instance app=\S+ name=web /g) ?? []).length, startsBefore, 'no second instance of index 0');
    t.equal((await viaRouter('web.localhost')).pid, webPid, 'the running one still serves');
  });

  await t.test('an instance of an app that does not exist is stopped', async (t) => {
    const advert: any = await new Promise((resolve) => {
      const sub = bus.subscribe('dea.advertise', (m) => {
        sub.unsubscribe();
        resolve(JSON.parse(decoder.decode(m.data)));
      });
      bus.publish('dea.locate', {});
    });
    const reply: any = await bus.request(`dea.${advert.id}.start`, {
      droplet: 'ghost', index: 0, name: 'ghost', uris: ['ghost.localhost'], runtime: 'node', sha1: webSha, version: `${webSha}-1`,
      limits: { mem: 64, disk: 256, fds: 100 }, env: [], services: [], users: ['nobody@example.com'], start_command: 'node server.js',
    }, 5000);
    await eventually(() => hmRequests.some((r) => r.body.droplet === 'ghost' && r.body.op === 'STOP' && r.body.instances.includes(reply.instance)), 'a STOP for the orphan', 10_000);
    t.match(hmRequests.find((r) => r.body.droplet === 'ghost')!.body, { op: 'STOP', last_updated: 0 });
    await eventually(() => exits.some((e) => e.body.instance === reply.instance && e.body.reason === 'STOPPED'), 'the orphan stopped', 10_000);
  });

  await t.test('an app that always crashes backs off, is reported FLAPPING and given up after the fifth crash', async (t) => {
    const id = await push('crashy', crashSha);
    const version = `${crashSha}-1`;
    const crashes = () => exits.filter((e) => e.body.droplet === id && e.body.reason === 'CRASHED');
    await eventually(() => crashes().length >= 2, 'a second crash', 10_000);
    const status: any = await bus.request('healthmanager.status', { droplet: id, version, state: 'FLAPPING' }, 2000);
    t.match(status, { indices: [{ index: 0 }] }, 'FLAPPING from the second crash');
    t.ok(status.indices[0].since >= Math.floor(crashes()[1]!.at / 1000) - 1, 'since the second crash');

    await eventually(() => crashes().length >= 5, 'the fifth crash', 25_000);
    const fifthAt = crashes()[4]!.at;
    await sleep(Math.max(0, fifthAt + 6000 - Date.now()));
    t.equal(crashes().length, 5, 'no sixth crash: given up, and the controller did not restart it either');
    const starts = startsOf(id);
    t.same(starts.map((s) => s.body.flapping), [false, true, true, true], 'one START per crash up to the fourth, from one manager');
    const gaps = starts.map((s, i) => s.at - crashes()[i]!.at);
    t.ok(gaps[0]! < 1000, `the first crash restarts at once (${gaps[0]} ms)`);
    for (const [i, delay] of [[1, 1000], [2, 2000], [3, 4000]] as const) {
      t.ok(gaps[i]! >= delay - 100 && gaps[i]! < delay + 2000, `after crash ${i + 1}: ${gaps[i]} ms, backoff ${delay} ms`);
    }
    const instances = (await api.get('/apps/crashy/instances')).json().instances;
    t.equal(instances.filter((i: any) => i.state === 'RUNNING' || i.state === 'STARTING').length, 0, 'nothing runs');
    const still: any = await bus.request('healthmanager.status', { droplet: id, version, state: 'FLAPPING' }, 2000);
    t.equal(still.indices.length, 1, 'still FLAPPING while given up');
    const crashed: any = await bus.request('healthmanager.status', { droplet: id, state: 'CRASHED' }, 2000);
    t.same(crashed.instances.map((c: any) => c.instance).sort(), crashes().map((c) => c.body.instance).sort(), 'CRASHED lists the crashed instances');

    // A change of the app (here: a restart, so a new version) ends the give-up.
    const before = startsOf(id).length;
    t.equal((await api.put('/apps/crashy', { state: 'STOPPED' })).status, 200);
    t.equal((await api.put('/apps/crashy', { state: 'STARTED' })).status, 200);
    await eventually(() => crashes().length >= 6, 'the restarted app runs (and crashes) again', 10_000);
    await eventually(() => startsOf(id).length > before, 'the health manager restarts the new version', 10_000);
    t.equal(startsOf(id).at(-1)!.body.version, `${crashSha}-2`);
    t.equal((await api.put('/apps/crashy', { state: 'STOPPED' })).status, 200);
  });

  await t.test('when the acting manager dies, the other takes over', async (t) => {
    const acting = /took the analysis lease/.test(hmA.log()) ? hmA : hmB;
    const other = acting === hmA ? hmB : hmA;
    t.notMatch(other.log(), /took the analysis lease/, 'only one manager acted so far');
    await acting.kill();
    // The lease of the dead one runs out (3 s with these settings), then the survivor acts.
    await eventually(() => /took the analysis lease/.test(other.log()), 'the survivor to take the lease', 8000);
    const before = startsOf(webId).length;
    process.kill(webPid, 'SIGKILL');
    await eventually(() => startsOf(webId).length > before, 'a START from the surviving manager', 5000);
    await eventually(async () => {
      const pid = (await viaRouter('web.localhost')).pid ?? 0;
      return pid > 0 && pid !== webPid;
    }, 'web back', 15_000);
    const stopping = Date.now();
    t.equal(await other.stop(), 0, 'SIGTERM: exits 0');
    t.ok(Date.now() - stopping < 2000, 'and promptly');
    t.match(other.log(), /stopping signal=SIGTERM/);
  });
});
