// Data services end to end on `skiff up`, part one: redis and a filesystem.
// examples/counter-redis (its `redis` npm package installed by the stager)
// bound through its manifest counts through the router, keeps its count
// across a restart and shares it once scaled to two instances, and finds it
// again after its redis-server is killed; a filesystem bound with
// `skiff bind-service` is shared by both instances of an app and closed to
// other apps; unbinding takes the variables away; deleting takes the
// redis-server and the directory. No credential in the platform's log, a
// backend's log or `skiff events`. Every process is ended by pid.

import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { skiff } from '../cli_harness';
import { hasRedis, redisServers, request, ROOT, startServicesPlatform } from '../e2e_services_harness';
import { eventually, isAlive } from '../harness';

t.test('redis and filesystem services on skiff up: bind, use, restart, scale, kill, unbind, delete', { skip: !hasRedis && 'redis-server is not installed (npm run setup)' }, async (t) => {
  const { dataDir, home, router, platform, run, envOf, services, exposed } = await startServicesPlatform(t, 'skiff-e2e-redis-');
  const secrets: string[] = [];

  await t.test('the marketplace, and a redis and a filesystem service', async (t) => {
    const market = await run(['marketplace']);
    t.match(market, /^SERVICE\s+PLANS\s+DESCRIPTION$/m);
    for (const label of ['redis', 'postgresql', 'filesystem']) t.match(market, new RegExp(`^${label}\\s+free \\(.*\\), large \\(`, 'm'), `${label}, free and large`);
    t.match(await run(['create-service', 'redis', 'counter-cache'], 120_000), /^created counter-cache: redis, plan free$/m);
    t.match(await run(['create-service', 'filesystem', 'shared-files'], 120_000), /^created shared-files: filesystem, plan free$/m);
    const listed = await services();
    t.match(listed['counter-cache'], /\shealthy \(running, /, 'counter-cache is healthy');
    t.match(listed['shared-files'], /\shealthy/, 'shared-files is healthy');
  });

  await t.test('counter-redis: bound by its manifest; the count survives a restart and is shared when scaled', async (t) => {
    const pushed = await run(['push', join(ROOT, 'examples', 'counter-redis'), '--instances', '1'], 300_000);
    t.match(pushed, /Installing Node\.js dependencies/, 'the stager installed the redis package');
    for (let i = 1; i <= 3; i++) t.match((await request(router, 'counter-redis.localhost')).body, new RegExp(`instance 0: this page was viewed ${i} times?\\n$`));
    const env = await envOf('counter-redis');
    const bound = JSON.parse(env.VCAP_SERVICES!) as { redis: Array<{ name: string; label: string; plan: string; credentials: { password: string; uri: string } }> };
    t.match(bound.redis[0], { name: 'counter-cache', label: 'redis', plan: 'free' });
    t.equal(env.REDIS_URL, bound.redis[0]!.credentials.uri, 'REDIS_URL: the one redis service');
    secrets.push(bound.redis[0]!.credentials.password);

    await run(['restart', 'counter-redis'], 180_000);
    await run(['scale', 'counter-redis', '--instances', '2'], 180_000);
    // Until both instances have answered (a new route may reach the router a moment after `scale` returns).
    const seen = new Set<string>();
    const counts: number[] = [];
    while (seen.size < 2 && counts.length < 40) {
      const m = /instance (\d+): this page was viewed (\d+) times/.exec((await request(router, 'counter-redis.localhost')).body);
      t.ok(m, 'the counter answers');
      if (!m) break;
      seen.add(m[1]!);
      counts.push(Number(m[2]));
    }
    t.same([...seen].sort(), ['0', '1'], 'both instances answer');
    t.same(counts, counts.map((_, i) => 4 + i), 'both count on from 3: one count, kept across the restart');

    const [server] = redisServers(platform.pid);
    t.ok(server !== undefined, 'a redis-server runs for it');
    process.kill(server!, 'SIGKILL');
    const total = `${3 + counts.length}\n`;
    await eventually(async () => (await request(router, 'counter-redis.localhost', '/count')).body === total, 'the counter to read the same count again', 30_000);
    t.pass('redis-server killed: its node starts it again, the count comes back from the append-only file');
    t.not(redisServers(platform.pid)[0], server, 'a new redis-server');
    await eventually(async () => /\shealthy/.test((await services())['counter-cache']!), 'counter-cache healthy again in skiff services', 20_000);
  });

  let sharedDir = '';
  await t.test('a filesystem bound with bind-service: shared by both instances, closed to other apps', async (t) => {
    await run(['push', join(ROOT, 'test', 'fixtures', 'files-app')], 300_000);
    t.equal((await request(router, 'files-app.localhost', '/greeting')).status, 503, 'nothing bound yet');
    const bound = await run(['bind-service', 'shared-files', 'files-app'], 180_000);
    t.match(bound, /^bound shared-files to files-app$/m);
    t.match(bound, /^files-app is running with services shared-files$/m, 'bind-service waits for the rolling restart');
    t.equal((await request(router, 'files-app.localhost', '/greeting', { method: 'PUT', body: 'hello' })).status, 201);
    const readers = new Set<string>();
    for (let i = 0; i < 40 && readers.size < 2; i++) {
      const reply = await request(router, 'files-app.localhost', '/greeting');
      t.equal(reply.body, 'hello');
      readers.add(String(reply.headers['x-instance']));
    }
    t.same([...readers].sort(), ['0', '1'], 'both instances read what one wrote');
    sharedDir = (JSON.parse((await envOf('files-app')).VCAP_SERVICES!) as { filesystem: Array<{ credentials: { dir: string } }> }).filesystem[0]!.credentials.dir;
    t.ok(existsSync(join(sharedDir, 'greeting')), 'in the directory its credentials name');
    const peek = await skiff(['ssh', 'counter-redis', '--', 'cat', join(sharedDir, 'greeting')], home);
    t.not(peek.code, 0, 'another app cannot read it');
    t.match(peek.stdout + peek.stderr, /Permission denied/);
  });

  await t.test('no credential in the platform\'s log, a backend\'s log or skiff events', async (t) => {
    t.equal(secrets.length, 1, 'the redis password was handed out');
    t.match(await run(['events', 'files-app']), /\sbound\s+\S+\s+bound service shared-files \(filesystem, free\)/, 'binding is an event, by name');
    const places = await exposed(['counter-redis', 'files-app']);
    for (const secret of secrets) t.notOk(places.some((text) => text.includes(secret)), 'nowhere');
  });

  await t.test('unbinding takes the variables away', async (t) => {
    t.match(await run(['unbind-service', 'counter-cache', 'counter-redis'], 180_000), /^counter-redis is running with no services$/m);
    const env = await envOf('counter-redis');
    t.equal(env.REDIS_URL, undefined, 'no REDIS_URL');
    t.equal(env.VCAP_SERVICES, '{}', 'VCAP_SERVICES is empty');
    const page = await request(router, 'counter-redis.localhost');
    t.equal(page.status, 503);
    t.match(page.body, /^no redis service is bound/, 'the app says it has no redis');
    t.match(await run(['events', 'counter-redis']), /\sunbound\s+\S+\s+unbound service counter-cache/);

    t.match(await run(['unbind-service', 'shared-files', 'files-app'], 180_000), /^files-app is running with no services$/m);
    t.equal((await envOf('files-app')).VCAP_SERVICES, '{}');
    t.equal((await request(router, 'files-app.localhost', '/greeting')).status, 503, 'the app has no directory any more');
  });

  await t.test('deleting takes the redis-server and the directory', async (t) => {
    const [server] = redisServers(platform.pid);
    t.match(await run(['delete-service', 'counter-cache'], 120_000), /^deleted counter-cache$/m);
    await eventually(() => !isAlive(server!), 'the redis-server to stop', 20_000);
    t.same(redisServers(platform.pid), [], 'no redis-server runs');
    t.same(readdirSync(join(dataDir, 'services', 'redis')), [], 'its directory is gone');
    await run(['delete-service', 'shared-files'], 120_000);
    t.notOk(existsSync(sharedDir), 'the shared directory is gone');
    t.match(await run(['services']), /^no services yet/m);
  });

  const code = await platform.stop();
  t.equal(code, 0, 'skiff up stops cleanly');
  t.same([...platform.seen].filter((pid) => isAlive(pid)), [], 'nothing is left running, redis-servers included');
});
