// Each role's own /metrics under `skiff up` (issue 15): every role gets a
// metrics port, printed by `skiff up`, listed by `skiff node info` and
// announced on the bus with its credentials; each answers only with the
// node's status credentials; and figures move with what the platform does:
// a push is a staging job and a DEA start, a killed app process a DEA crash
// and a health-manager start decision, a created service a provision of
// the services node. Every process is ended by pid.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { requestAll } from '../../bus/connection';
import type { ComponentAnnounce } from '../../bus/messages';
import { Subjects } from '../../bus/subjects';
import { finish, spawnSkiff, tempHome } from '../cli_harness';
import { eventually, isAlive, metricSample as sample } from '../harness';
import { descendants, platformBus, platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';

const HELLO = join(__dirname, '..', '..', 'examples', 'hello-node');

t.test('every role serves its own /metrics, and the figures move', async (t) => {
  const dataDir = platformDataDir(t, 'skiff-role-metrics-');
  const home = tempHome(t);
  const ports = await platformPorts();
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 300_000);
  await eventually(() => /^metrics: /m.test(platform.out()) && /^node: /m.test(platform.out()), 'skiff up to print its metrics line', 90_000);

  // `metrics: router http://127.0.0.1:P/metrics, controller http://..., ...`
  const line = /^metrics: (.*) \(basic auth from (.*)\)$/m.exec(platform.out());
  t.ok(line, 'skiff up prints where each role serves its metrics');
  const addresses = new Map([...line![1]!.matchAll(/(\w+) http:\/\/([^/]+)\/metrics/g)].map((m) => [m[1]!, m[2]!]));
  t.same([...addresses.keys()].sort(), ['controller', 'dea', 'health', 'router', 'services', 'stager'], 'every role has one');
  t.equal(line![2], join(dataDir, 'router-status.json'));
  const status = JSON.parse(readFileSync(line![2]!, 'utf8')) as { user: string; password: string };
  const authorization = `Basic ${Buffer.from(`${status.user}:${status.password}`).toString('base64')}`;
  const scrape = async (role: string): Promise<string> => {
    const reply = await fetch(`http://${addresses.get(role)}/metrics`, { headers: { authorization } });
    if (reply.status !== 200) throw new Error(`${role}'s /metrics answered ${reply.status}`);
    return reply.text();
  };

  for (const role of ['controller', 'stager', 'dea', 'health', 'services']) {
    const anonymous = await fetch(`http://${addresses.get(role)}/metrics`);
    t.equal(anonymous.status, 401, `${role}: no figures without credentials`);
    t.match(await scrape(role), /^process_resident_memory_bytes \d/m, `${role}: its process`);
  }
  const before = { stager: await scrape('stager'), dea: await scrape('dea'), health: await scrape('health'), services: await scrape('services') };
  t.equal(sample(before.stager, 'skiff_stager_jobs_total', { result: 'staged' }), 0, 'no job staged yet');
  t.equal(sample(before.dea, 'skiff_dea_instance_starts_total'), 0, 'no instance started yet');
  t.equal(sample(before.dea, 'skiff_dea_instances', { state: 'RUNNING' }), 0);
  t.equal(sample(before.health, 'skiff_health_decisions_total', { kind: 'start' }), 0, 'no decision yet');
  t.equal(sample(before.services, 'skiff_services_operations_total', { operation: 'provision', service: 'filesystem', result: 'ok' }), 0, 'no service provisioned yet');

  // The components announce where their metrics are, and with which credentials (CF v1's VcapComponent).
  const bus = await platformBus(t, dataDir, 'role-metrics-test');
  await eventually(async () => {
    const answers = await requestAll<ComponentAnnounce>(bus, Subjects.componentDiscover, {}, { windowMs: 1000 });
    const byType = new Map(answers.map((a) => [a.type, a]));
    return ['CloudController', 'Stager', 'DEA', 'HealthManager', 'ServicesNode', 'Router'].every((type) => {
      const a = byType.get(type);
      return a?.metrics !== undefined && a.credentials?.[0] === status.user && a.credentials[1] === status.password;
    }) && byType.get('DEA')!.metrics === addresses.get('dea') && byType.get('Stager')!.metrics === addresses.get('stager')
      && byType.get('ServicesNode')!.metrics === addresses.get('services');
  }, 'every component to announce its metrics address and credentials', 30_000);

  const info = await finish(spawnSkiff(['node', 'info', '--data-dir', dataDir, '--json'], home), 30_000);
  t.equal(info.code, 0, info.stderr);
  t.same(JSON.parse(info.stdout).metrics, Object.fromEntries(addresses), 'skiff node info lists them');

  // A push: one staging job, one DEA start, a running instance with its memory.
  const pushed = await finish(spawnSkiff(['push', HELLO, '--name', 'hello'], home), 180_000);
  t.equal(pushed.code, 0, pushed.stderr);
  const stager = await scrape('stager');
  t.equal(sample(stager, 'skiff_stager_jobs_total', { result: 'staged' }), 1, 'the staging job counted');
  t.equal(sample(stager, 'skiff_stager_staging_duration_seconds_count', { result: 'staged' }), 1, 'and timed');
  await eventually(async () => {
    const dea = await scrape('dea');
    return sample(dea, 'skiff_dea_instance_starts_total') === 1 && sample(dea, 'skiff_dea_instances', { state: 'RUNNING' }) === 1
      && (sample(dea, 'skiff_dea_app_memory_bytes', { app: 'hello' }) ?? 0) > 1_000_000;
  }, 'the DEA to count the instance it started, running, with its memory', 30_000);
  const controller = await scrape('controller');
  t.ok((sample(controller, 'skiff_controller_http_requests_total', { route: '/apps/:name', code: '200' }) ?? 0) >= 1, 'the controller counts requests by route');
  t.ok((sample(controller, 'skiff_controller_placements_total', { result: 'placed' }) ?? 0) >= 1, 'and its placements');

  // The app's process dies: the DEA counts a crash, the health manager decides to start it again.
  const appPids = descendants(platform.pid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('server.js');
    } catch {
      return false;
    }
  });
  t.ok(appPids.length > 0, 'the app\'s process found');
  for (const pid of appPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  await eventually(async () => sample(await scrape('dea'), 'skiff_dea_instance_crashes_total') === 1, 'the DEA to count the crash', 30_000);
  await eventually(async () => (sample(await scrape('health'), 'skiff_health_decisions_total', { kind: 'start' }) ?? 0) >= 1, 'the health manager\'s start decision', 60_000);
  const health = await scrape('health');
  t.ok((sample(health, 'skiff_health_analysis_passes_total') ?? 0) > 0, 'its analysis passes');
  t.equal(sample(health, 'skiff_health_leader'), 1, 'the only health manager acts');
  await eventually(async () => sample(await scrape('dea'), 'skiff_dea_instances', { state: 'RUNNING' }) === 1, 'the instance to run again', 60_000);

  // A service created: the services node counts its provision, and then the instance, healthy.
  const created = await finish(spawnSkiff(['create-service', 'filesystem', 'shared-files'], home), 120_000);
  t.equal(created.code, 0, created.stderr);
  t.equal(sample(await scrape('services'), 'skiff_services_operations_total', { operation: 'provision', service: 'filesystem', result: 'ok' }), 1, 'the provision counted');
  await eventually(async () => sample(await scrape('services'), 'skiff_services_instances', { service: 'filesystem', health: 'healthy' }) === 1, 'the services node to show the instance, healthy', 30_000);

  t.equal(await platform.stop(), 0, 'skiff up stops cleanly');
});
