// Issue 16: "an app the health manager gave up on is not scaled". A real
// nats-server, controller and `skiff health`; the DEA and the routers are
// played on the bus: a DEA stand-in that runs what it is asked to and
// publishes `dea.heartbeat`, and `router.app_stats` as bus/STATS.md
// describes it (cumulative counts, every second). Two apps with the same
// policy and the same traffic, well over its target; on one of them the
// health manager has given up on an index (two crashes, with
// giveup_crash_number 1), while a heartbeat still shows an instance running
// there, so that only the give-up, not a missing instance, can hold it
// back; flapping_death is high, so that it is not flapping either. The
// healthy app is autoscaled; the other keeps its instances, without an
// `autoscaled` event. Then `skiff autoscale APP` shows the figures the
// autoscaler sees now (GET /apps/:name/autoscale), per running instance.

import t from 'tap';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { putSetting } from '../bus/config';
import type { DeaHeartbeat, DeaStats, RouterAppStats } from '../bus/messages';
import { skiff, tempHome } from './cli_harness';
import { ADMIN, fakeDea, fakeStager, startController, testBus } from './controller_harness';
import { startHealth } from './health_harness';
import { eventually, sleep, startNats } from './harness';

const POLICY = { min: 1, max: 4, target_rps: 10 };
/** Requests per second each app gets: 50 per instance of two, five times the target. */
const RATE = 100;

interface AppEvent {
  type: string;
  actor: string;
  description: string;
}

t.test('with load over target, an app with a given-up index is not scaled; a healthy one is', async (t) => {
  const nats = await startNats(t);
  const bus = await testBus(t, nats);
  const settings: Record<string, unknown> = {
    'health.giveup_crash_number': 1,
    'health.flapping_death': 100,
    'health.flapping_timeout': 3600,
    'health.min_restart_delay': 0,
    'health.max_restart_delay': 0,
    'health.analysis_interval': 0.5,
    'autoscale.interval': 1,
  };
  for (const [key, value] of Object.entries(settings)) await putSetting(bus, key, value);

  const sha1 = 'a'.repeat(40);
  fakeStager(t, bus, () => ({ droplet: sha1, sha1, runtime: 'node', framework: 'node', start_command: 'node server.js', log: '' }));
  const dea = fakeDea(t, bus, { id: 'dea-autoscale', memory: 8192 });
  const controller = await startController(t, nats, { args: ['--reconcile-interval', '1'] });
  const health = await startHealth(t, nats);
  const heartbeat = setInterval(() => {
    const beat: DeaHeartbeat = { dea: dea.id, droplets: dea.running.map((i) => ({ ...i, state: 'RUNNING', state_timestamp: Math.floor(Date.now() / 1000) })) };
    bus.publish('dea.heartbeat', beat);
    // 20% of a core per instance.
    const stats: DeaStats = {
      dea: dea.id, node: 'n1', ts: Date.now(), memory: { total_mb: 8192, reserved_mb: 64 * dea.running.length },
      instances: dea.running.map((i) => ({ app: i.droplet, version: i.version, instance: i.instance, index: i.index, state: 'RUNNING', cpu: 20, mem_kb: 40_000, disk_bytes: 1000 })),
    };
    bus.publish('dea.stats', stats);
  }, 1000);
  t.teardown(() => clearInterval(heartbeat));
  await eventually(() => /took the analysis lease/.test(health.log()), 'the health manager to act', 15_000);

  const api = controller.api;
  api.token = await api.login(ADMIN.email, ADMIN.password);
  const push = async (name: string): Promise<{ id: string; version: string }> => {
    const created = await api.post('/apps', { name, instances: 2, memory: 64, autoscale: POLICY });
    if (created.status !== 201) throw new Error(`create ${name}: ${created.status} ${created.body}`);
    const pkg = gzipSync(Buffer.from(name));
    const upload = await api.request('PUT', `/apps/${name}/application`, { raw: pkg, headers: { 'x-skiff-sha256': createHash('sha256').update(pkg).digest('hex') } });
    if (upload.status !== 202) throw new Error(`upload ${name}: ${upload.status} ${upload.body}`);
    await eventually(async () => (await api.get(`/apps/${name}`)).json().package_state === 'STAGED', `${name} staged`, 15_000);
    const started = await api.put(`/apps/${name}`, { state: 'STARTED' });
    if (started.status !== 200) throw new Error(`start ${name}: ${started.status} ${started.body}`);
    const app = started.json();
    return { id: app.id, version: app.version };
  };
  const view = async (name: string): Promise<{ instances: number; runningInstances: number }> => (await api.get(`/apps/${name}`)).json();
  const events = async (name: string): Promise<AppEvent[]> => (await api.get(`/apps/${name}/events`)).json();

  const steady = await push('steady');
  const shaky = await push('shaky');
  for (const name of ['steady', 'shaky']) {
    await eventually(async () => (await view(name)).runningInstances === 2, `both instances of ${name} running`, 20_000);
  }

  // Two crashes of index 1 of shaky: given up. Its instance there stays in the heartbeats.
  for (const n of [1, 2]) {
    bus.publish('droplet.exited', { droplet: shaky.id, version: shaky.version, instance: `shaky-crashed-${n}`, index: 1, reason: 'CRASHED', exit_status: 1 });
    await bus.flush();
    await sleep(200);
  }
  await eventually(async () => (await events('shaky')).some((e) => e.type === 'gave_up'), 'the health manager to give up on index 1', 15_000);
  t.equal((await view('shaky')).runningInstances, 2, 'shaky still shows both instances running');

  // The routers: the same traffic to both apps, cumulative, every second.
  const started = Date.now();
  let total = 0;
  const publishStats = () => {
    total = Math.floor(((Date.now() - started) / 1000) * RATE);
    const traffic = { codes: { '200': total }, latency: { counts: [total, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], sum: total * 0.002, count: total } };
    const stats: RouterAppStats = {
      router: 'router-played', host: '127.0.0.1:1', started, ts: Date.now(),
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      apps: { [steady.id]: traffic, [shaky.id]: traffic },
    };
    bus.publish('router.app_stats', stats);
  };
  publishStats();
  const routers = setInterval(publishStats, 1000);
  t.teardown(() => clearInterval(routers));

  await eventually(async () => (await view('steady')).instances > 2, 'the healthy app to be scaled out', 30_000);
  const scaled = (await events('steady')).filter((e) => e.type === 'autoscaled');
  t.equal(scaled.length, 1, 'the healthy app: one autoscaled event');
  t.match(scaled[0], { actor: 'autoscaler', description: /^autoscaled 2 -> 4: 50 req\/s per instance > 10$/ });

  // A few more of the autoscaler's looks (one a second) with the same figures.
  await sleep(5000);
  t.equal((await view('shaky')).instances, 2, 'the app with a given-up index keeps its instances');
  t.same((await events('shaky')).filter((e) => e.type === 'autoscaled'), [], 'and has no autoscaled event');
  t.equal((await view('shaky')).runningInstances, 2, 'its instances still show running: only the give-up held it back');

  // What the autoscaler sees now, as a user asks for it: 100 req/s over the 4 instances steady runs now.
  await eventually(async () => (await view('steady')).runningInstances === 4, 'the 4 instances of steady running', 20_000);
  const home = tempHome(t);
  t.equal((await skiff(['target', `http://127.0.0.1:${controller.port}`], home)).code, 0);
  const login = await skiff(['login', '--email', ADMIN.email, '--password', ADMIN.password], home);
  t.equal(login.code, 0, login.stderr);
  const shown = await skiff(['autoscale', 'steady'], home);
  t.equal(shown.code, 0, shown.stderr);
  t.match(shown.stdout, /^instances:\s+4\/4$/m);
  t.match(shown.stdout, /^now:\s+(2[4-6](\.\d)?) req\/s per instance, p99 [0-5](\.\d)? ms, CPU 20% per instance \(last 10 s\)$/m, 'skiff autoscale shows the figures per running instance');
  t.match(shown.stdout, /autoscaled\s+autoscaler\s+autoscaled 2 -> 4/, 'and the last decision');
  const json = JSON.parse((await skiff(['autoscale', 'steady', '--json'], home)).stdout);
  t.match(json, { instances: 4, runningInstances: 4, now: { window_s: 10, cpu: 80, cpu_per_instance: 20 } });
  t.ok(Math.abs(json.now.rps - RATE) <= RATE * 0.1, `the rate through the routers (${json.now.rps} req/s)`);
  t.ok(Math.abs(json.now.rps_per_instance - RATE / 4) <= RATE * 0.1 / 4, `per running instance (${json.now.rps_per_instance} req/s)`);

  clearInterval(routers);
  clearInterval(heartbeat);
  await sleep(16_000);
  const stale = await skiff(['autoscale', 'shaky'], home);
  t.match(stale.stdout, /^now:\s+no figures yet from the routers and DEAs$/m, 'once routers and DEAs fall silent, no figures');
});
