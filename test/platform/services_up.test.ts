// The services role under `skiff up`: run by default, idle until an
// instance is provisioned, removed and added live with `skiff role`
// (its redis-servers going and coming back with their data), and stopped
// with the platform, leaving nothing running.

import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceSubjects, type RedisCredentials } from '../../bus/platform';
import { withRedis } from '../../services/resp';
import { skiff, tempHome } from '../cli_harness';
import { eventually, isAlive } from '../harness';
import { descendants, platformBus, platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';

const hasRedis = ['/usr/bin/redis-server', '/usr/sbin/redis-server'].some((path) => {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
});

function redisServers(pid: number): number[] {
  return descendants(pid).filter((child) => {
    try {
      return readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'redis-server';
    } catch {
      return false;
    }
  });
}

t.test('skiff up runs the data services; skiff role removes and adds them live; the stop leaves nothing', { skip: !hasRedis && 'redis-server is not installed (npm run setup)' }, async (t) => {
  const dataDir = platformDataDir(t, 'skiff-services-up-');
  const home = tempHome(t);
  const ports = await platformPorts();
  const node = 'svc-up-1';
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 170_000, { SKIFF_NODE: node });
  // The node: line comes after the api: line, once the node's roles are known.
  await eventually(() => /^node: /m.test(platform.out()) && platform.err().includes('services: services node ready'), 'the platform and its services node to be up', 90_000);
  t.match(platform.out(), new RegExp(`^node: ${node} \\(router, controller, stager, dea, health, services, nats-server\\)$`, 'm'));
  t.equal(statSync(join(dataDir, 'nats', 'services.json')).mode & 0o777, 0o600, 'the services role\'s NATS credentials, 0600');
  t.same(redisServers(platform.pid), [], 'idle: no backend before an instance');

  const bus = await platformBus(t, dataDir, 'test-services-up');
  t.same(await bus.request(ServiceSubjects.provision, { id: 'cache-1', service: 'redis', plan: 'free', name: 'cache', owner: 'admin@skiff.local' }, 30_000), { ok: true, node });
  const { credentials } = await bus.request<{ credentials: RedisCredentials }>(ServiceSubjects.bind(node), { id: 'cache-1', app: 'app-1' }, 30_000);
  await withRedis(credentials.host, credentials.port, credentials.password, (redis) => redis.command('SET', 'greeting', 'hello'));
  const [server] = redisServers(platform.pid);
  t.ok(server !== undefined, 'the redis-server runs under skiff up');

  const removed = await skiff(['role', 'remove', 'services', '--node', node], home);
  t.equal(removed.code, 0, removed.stderr);
  await eventually(() => !isAlive(server!), 'the redis-server to stop with its role', 30_000);
  t.pass('skiff role remove services stops the role and its backends');
  const added = await skiff(['role', 'add', 'services', '--node', node], home);
  t.equal(added.code, 0, added.stderr);
  t.match(added.stdout, /^roles:.*services/m);
  await eventually(() => redisServers(platform.pid).length === 1, 'the redis-server to come back', 30_000);
  const read = () => withRedis(credentials.host, credentials.port, credentials.password, (redis) => redis.command('GET', 'greeting')).catch(() => 'no answer');
  await eventually(async () => (await read()) !== 'no answer', 'it answers', 15_000);
  t.equal(await read(), 'hello', 'skiff role add services brings it back with its data');

  const code = await platform.stop();
  t.equal(code, 0, 'skiff up stops cleanly');
  const left = [...platform.seen].filter((pid) => isAlive(pid));
  t.same(left, [], 'nothing of the platform is left running, backends included');
  t.match(platform.err(), /services: stopping the data services/);
});
