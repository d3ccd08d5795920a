// End to end: a real nats-server with JetStream, a real `skiff dea` process,
// droplets in the object store, apps as real processes.

import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { requestAll } from '../bus/connection';
import { deaFilesSubject } from '../bus/platform';
import { validateDeaStats } from '../bus/validate';
import { eventually, isAlive, startNats } from './harness';
import { ENV_APP, getJson, makeDataDir, putDroplet, recorder, startDea, startRequest, waitGone } from './dea_harness';

t.test('a DEA runs, reports, stops and loses instances', async (t) => {
  const nats = await startNats(t);
  const rec = await recorder(t, nats.url);
  const dataDir = makeDataDir(t);
  const first = 40000 + Math.floor(Math.random() * 2000) * 10;
  const dea = startDea(t, nats.url, dataDir, ['--port-range', `${first}-${first + 9}`, '--start-timeout', '2', '--stop-grace', '2', '--memory', '1024', '--index', '7'], {
    SKIFF_ADMIN_PASSWORD: 'hunter2-secret',
    DEA_SECRET_THING: 'should-not-leak',
  });
  const advert = await rec.waitFor('dea.advertise', () => true, 'first dea.advertise', 15_000);
  const deaId: string = advert.id;
  t.match(advert, { available_memory: 1024, runtimes: ['node', 'python', 'static'], app_id_to_count: {} });
  t.ok(rec.of('dea.start').some((hello) => hello.id === deaId), 'dea.start hello at start');

  const sha1 = await putDroplet(rec.bus, { 'server.js': ENV_APP }, 'node server.js');
  const bus = rec.bus;

  let running: { port: number; instance: string; pid: number };
  await t.test('start: register, answer with exactly the right env, as nobody, with the fds limit', async (t) => {
    const reply: any = await bus.request(`dea.${deaId}.start`, startRequest({ sha1, env: ['GREETING=hi there', 'PORT=1'] }), 5000);
    t.equal(reply.dea, deaId);
    const reg = await rec.waitFor('router.register', (r) => r.private_instance_id === reply.instance, 'router.register', 15_000);
    t.match(reg, { host: '127.0.0.1', uris: ['shop.localhost'], app: 'app-1', private_instance_index: '0', tags: { component: 'dea-7' } });
    t.ok(reg.port >= first && reg.port <= first + 9, 'port from the range');
    const answer = await getJson(reg.port, '/env');
    const env = answer.env as Record<string, string>;
    // PWD is set by /bin/sh itself.
    t.same(Object.keys(env).filter((k) => k !== 'PWD').sort(), [
      'CF_INSTANCE_INDEX', 'GREETING', 'HOME', 'LANG', 'PATH', 'PORT', 'TMPDIR',
      'VCAP_APPLICATION', 'VCAP_APP_HOST', 'VCAP_APP_PORT', 'VCAP_SERVICES', 'npm_config_update_notifier',
    ], 'nothing of the DEA environment');
    t.notMatch(JSON.stringify(answer), /hunter2|should-not-leak|NATS_URL|nats:\/\//, 'no DEA secrets');
    t.equal(env.PORT, String(reg.port));
    t.equal(env.GREETING, 'hi there');
    t.equal(env.VCAP_SERVICES, '{}');
    t.equal(env.HOME, `${dataDir}/dea/7/instances/${reply.instance}`);
    t.ok(env.TMPDIR!.startsWith(env.HOME!));
    t.match(JSON.parse(env.VCAP_APPLICATION!), { name: 'shop', instance_id: reply.instance, instance_index: 0, version: 'v-1', uris: ['shop.localhost'], limits: { mem: 128 } });
    t.equal(answer.cwd, `${env.HOME}/app`);
    if (process.getuid?.() === 0) t.equal(answer.uid, 65534, 'runs as nobody');
    t.equal(answer.nofile, 100, 'fds limit applied');
    running = { port: reg.port, instance: reply.instance, pid: answer.pid };
    const logs = readFileSync(`${env.HOME}/logs/stdout.log`, 'utf8');
    t.match(logs, /request \/env/, 'stdout goes to logs/stdout.log');
    t.match(readFileSync(`${env.HOME}/logs/stderr.log`, 'utf8'), /to stderr/);
  });

  await t.test('find.droplet with stats, status, heartbeat, advertise', async (t) => {
    await eventually(async () => {
      const [r]: any[] = await requestAll(bus, 'dea.find.droplet', { droplet: 'app-1', include_stats: true }, { windowMs: 300 });
      return r?.stats?.usage.mem > 0;
    }, 'stats with memory', 8000);
    const replies: any[] = await requestAll(bus, 'dea.find.droplet', { droplet: 'app-1', include_stats: true }, { windowMs: 300 });
    t.equal(replies.length, 1);
    t.match(replies[0], { dea: deaId, droplet: 'app-1', version: 'v-1', instance: running.instance, index: 0, state: 'RUNNING' });
    t.match(replies[0].stats, { name: 'shop', host: '127.0.0.1', port: running.port, uris: ['shop.localhost'], mem_quota: 128 * 1048576, fds_quota: 100 });
    t.ok(replies[0].stats.usage.mem > 1000, 'RSS in KB');
    t.ok(replies[0].stats.usage.disk > 0, 'disk in bytes');
    t.ok(replies[0].stats.uptime > 0);
    t.match(replies[0].stats.usage.time, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$/);
    t.same(await requestAll(bus, 'dea.find.droplet', { droplet: 'app-1', states: ['CRASHED'] }, { windowMs: 200 }), []);
    t.same(await requestAll(bus, 'dea.find.droplet', { droplet: 'other' }, { windowMs: 200 }), []);

    const status: any = await bus.request('dea.status', {}, 2000);
    t.match(status, { id: deaId, max_memory: 1024, reserved_memory: 128, available_memory: 896, instances: { RUNNING: 1 } });

    bus.publish('healthmanager.start', {});
    const beat = await rec.waitFor('dea.heartbeat', (h) => h.droplets.some((d: any) => d.state === 'RUNNING'), 'heartbeat on healthmanager.start', 3000);
    t.match(beat.droplets[0], { droplet: 'app-1', version: 'v-1', instance: running.instance, index: 0, state: 'RUNNING' });

    const discover = await requestAll(bus, 'dea.discover', { droplet: 'app-2', limits: { mem: 512, disk: 1, fds: 1 }, runtime: 'node', sha: 'x' }, { windowMs: 1000 });
    t.same(discover, [{ id: deaId, ip: '127.0.0.1', port: 0 }]);
    t.same(await requestAll(bus, 'dea.discover', { droplet: 'app-2', limits: { mem: 4096, disk: 1, fds: 1 }, runtime: 'node', sha: 'x' }, { windowMs: 500 }), [], 'no answer without the memory');
    t.same(await requestAll(bus, 'dea.discover', { droplet: 'app-2', limits: { mem: 1, disk: 1, fds: 1 }, runtime: 'cobol', sha: 'x' }, { windowMs: 500 }), [], 'no answer without the runtime');

    const before = rec.of('dea.advertise').length;
    bus.publish('dea.locate', {});
    await eventually(() => rec.of('dea.advertise').length > before, 'advertise on dea.locate', 2000);
    t.match(rec.of('dea.advertise').at(-1), { id: deaId, available_memory: 896, app_id_to_count: { 'app-1': 1 } });
  });

  await t.test('dea.stats every 5 s: memory and each instance\'s usage, valid on the bus', async (t) => {
    const stats = await rec.waitFor('dea.stats', (s) => s.instances.some((i: any) => i.mem_kb > 1000 && i.disk_bytes > 0), 'dea.stats with usage', 15_000);
    t.same(validateDeaStats(stats), { ok: true, value: stats }, 'passes the bus validator as sent');
    t.match(stats, { dea: deaId, memory: { total_mb: 1024, reserved_mb: 128 } });
    t.ok(Math.abs(stats.ts - Date.now()) < 15_000);
    t.match(stats.instances, [{ app: 'app-1', version: 'v-1', instance: running.instance, index: 0, state: 'RUNNING' }]);
    t.ok(stats.instances[0].cpu >= 0);
    const all = rec.of('dea.stats').filter((s) => s.dea === deaId);
    await eventually(() => rec.of('dea.stats').filter((s) => s.dea === deaId).length > all.length, 'the next dea.stats', 10_000);
    const times = rec.of('dea.stats').filter((s) => s.dea === deaId).map((s) => s.ts);
    const gap = times.at(-1)! - times.at(-2)!;
    t.ok(gap >= 4000 && gap <= 8000, `about 5 s apart (${gap} ms)`);
  });

  await t.test('router.start re-registers at once; dea.update swaps uris and session affinity', async (t) => {
    const before = rec.of('router.register').length;
    bus.publish('router.start', { id: 'r', hosts: ['127.0.0.1'], minimumRegisterIntervalInSeconds: 1 });
    await eventually(() => rec.of('router.register').length > before, 're-register on router.start', 2000);
    const count = rec.of('router.register').length;
    await eventually(() => rec.of('router.register').length >= count + 2, 're-register every minimumRegisterIntervalInSeconds', 4000);

    bus.publish('dea.update', { droplet: 'app-1', uris: ['new.localhost'] });
    const gone = await rec.waitFor('router.unregister', (u) => u.uris.includes('shop.localhost'), 'old uri unregistered', 3000);
    t.equal(gone.port, running.port);
    await rec.waitFor('router.register', (r) => r.uris.includes('new.localhost') && r.port === running.port, 'new uri registered', 3000);
    t.notOk(rec.of('router.register').some((r) => r.options !== undefined), 'no route options for an app without session affinity');

    // Registers go out every second now: each check looks at those after a point.
    const since = (from: number) => rec.of('router.register').slice(from).filter((r) => r.port === running.port);
    const unregistered = rec.of('router.unregister').length;
    let from = rec.of('router.register').length;
    bus.publish('dea.update', { droplet: 'app-1', uris: ['new.localhost'], session_affinity: true });
    await eventually(() => since(from).some((r) => r.options?.session_affinity === true), 'registered with session affinity', 3000);
    t.same(since(from).find((r) => r.options !== undefined).uris, ['new.localhost']);
    t.equal(rec.of('router.unregister').length, unregistered, 'turning it on unregisters nothing: the route never loses the instance');
    from = rec.of('router.register').length;
    bus.publish('dea.update', { droplet: 'app-1', uris: ['new.localhost'] });
    await eventually(() => since(from).length >= 2, 'two more registers', 4000);
    t.ok(since(from).every((r) => r.options?.session_affinity === true), 'a dea.update without the field keeps it');
    bus.publish('dea.update', { droplet: 'app-1', uris: ['new.localhost'], session_affinity: false });
    await eventually(() => since(from).some((r) => r.options === undefined), 'registered without session affinity', 3000);
    const off = since(from).findIndex((r) => r.options === undefined);
    t.ok(since(from).slice(off).every((r) => r.options === undefined), 'and it stays off');
    t.equal(rec.of('router.unregister').length, unregistered, 'nor does turning it off');
    bus.publish('router.start', { id: 'r', hosts: ['127.0.0.1'], minimumRegisterIntervalInSeconds: 20 });
  });

  await t.test('files: listing, slices, tail, refusal', async (t) => {
    const subject = deaFilesSubject(deaId);
    const root: any = await bus.request(subject, { droplet: 'app-1', instance: running.instance, path: '/' }, 2000);
    t.same(root.entries.map((e: any) => e.name).sort(), ['app', 'droplet.json', 'logs', 'tmp']);
    const tail: any = await bus.request(subject, { droplet: 'app-1', instance: running.instance, path: 'logs/stdout.log', offset: -6 }, 2000);
    t.equal(Buffer.from(tail.data_base64, 'base64').length, 6, 'tail of 6 bytes');
    t.match(Buffer.from(tail.data_base64, 'base64').toString(), /env\n$/);
    t.match(await bus.request(subject, { droplet: 'app-1', instance: running.instance, path: '../../run' }, 2000), { code: 'bad_path' });
    t.match(await bus.request(subject, { droplet: 'app-1', instance: 'nope', path: '/' }, 2000), { code: 'unknown_instance' });
    t.match(await bus.request(subject, { droplet: 'other-app', instance: running.instance, path: '/' }, 2000), { code: 'unknown_instance' }, 'an instance is found only through its app');
    t.match(await bus.request(subject, { instance: 5 }, 2000), { code: 'bad_path' });
  });

  await t.test('stop: unregister, droplet.exited STOPPED, process gone, directory removed', async (t) => {
    bus.publish('dea.stop', { droplet: 'app-1', indices: [0] });
    const unreg = await rec.waitFor('router.unregister', (u) => u.private_instance_id === running.instance && u.uris.includes('new.localhost'), 'unregister on stop', 3000);
    t.equal(unreg.port, running.port);
    const exited = await rec.waitFor('droplet.exited', (e) => e.instance === running.instance, 'droplet.exited', 5000);
    t.match(exited, { droplet: 'app-1', version: 'v-1', index: 0, reason: 'STOPPED' });
    const unregAt = rec.messages.findIndex((m) => m.subject === 'router.unregister' && m.body.private_instance_id === running.instance && m.body.uris.includes('new.localhost'));
    const exitAt = rec.messages.findIndex((m) => m.subject === 'droplet.exited' && m.body.instance === running.instance);
    t.ok(unregAt < exitAt, 'routes go first');
    await waitGone(running.pid, 'app process gone');
    await eventually(() => !existsSync(`${dataDir}/dea/7/instances/${running.instance}`), 'instance directory removed', 3000);
    t.same(await requestAll(bus, 'dea.find.droplet', { droplet: 'app-1' }, { windowMs: 200 }), []);
  });

  await t.test('an app that exits crashes; its files stay readable', async (t) => {
    const reply: any = await bus.request(`dea.${deaId}.start`, startRequest({ sha1, index: 1, session_affinity: true }), 5000);
    const reg = await rec.waitFor('router.register', (r) => r.private_instance_id === reply.instance, 'registered', 15_000);
    t.same(reg.options, { session_affinity: true }, "the start's session affinity goes into its register message");
    await fetch(`http://127.0.0.1:${reg.port}/exit`).then((r) => r.text());
    const exited = await rec.waitFor('droplet.exited', (e) => e.instance === reply.instance, 'droplet.exited CRASHED', 5000);
    t.match(exited, { droplet: 'app-1', index: 1, reason: 'CRASHED', exit_status: 3, exit_description: 'app instance exited' });
    t.ok(exited.crash_timestamp > 0);
    const unreg = await rec.waitFor('router.unregister', (u) => u.private_instance_id === reply.instance, 'unregistered', 5000);
    t.same(unreg.options, { session_affinity: true }, 'and its unregister, which has the same shape');
    const [found]: any[] = await requestAll(bus, 'dea.find.droplet', { droplet: 'app-1', states: ['CRASHED'] }, { windowMs: 300 });
    t.match(found, { instance: reply.instance, state: 'CRASHED' });
    const log: any = await bus.request(deaFilesSubject(deaId), { droplet: 'app-1', instance: reply.instance, path: 'logs/stdout.log' }, 2000);
    t.equal(log.type, 'file');
    bus.publish('dea.stop', { droplet: 'app-1' });
    await new Promise((r) => setTimeout(r, 300));
    t.equal((await requestAll(bus, 'dea.find.droplet', { droplet: 'app-1' }, { windowMs: 200 })).length, 1, 'a plain stop keeps crash records');
  });

  await t.test('an app that never listens crashes after --start-timeout', async (t) => {
    const quiet = await putDroplet(bus, { 'x.txt': 'x' }, 'sleep 30');
    const reply: any = await bus.request(`dea.${deaId}.start`, startRequest({ sha1: quiet, index: 2 }), 5000);
    const exited = await rec.waitFor('droplet.exited', (e) => e.instance === reply.instance, 'crash after start timeout', 8000);
    t.match(exited, { reason: 'CRASHED', exit_description: /did not accept connections/ });
    t.notOk(rec.of('router.register').some((r) => r.private_instance_id === reply.instance), 'never registered');
  });

  await t.test('a memory hog is killed: out of memory', async (t) => {
    const reply: any = await bus.request(`dea.${deaId}.start`, startRequest({ sha1, index: 3, limits: { mem: 96, disk: 256, fds: 100 } }), 5000);
    const reg = await rec.waitFor('router.register', (r) => r.private_instance_id === reply.instance, 'registered', 15_000);
    const { pid } = await getJson(reg.port, '/env');
    await fetch(`http://127.0.0.1:${reg.port}/hog`).then((r) => r.text());
    const exited = await rec.waitFor('droplet.exited', (e) => e.instance === reply.instance, 'killed over its limit', 10_000);
    t.match(exited, { reason: 'CRASHED', exit_description: 'out of memory' });
    await waitGone(pid, 'hog gone');
  });

  await t.test('bad messages are counted and logged, never fatal', async (t) => {
    bus.publish(`dea.${deaId}.start`, new TextEncoder().encode('{"droplet":'));
    bus.publish('dea.stop', {});
    await eventually(() => /rejected message/.test(dea.log()), 'rejection logged', 3000);
    t.notMatch(dea.log(), /hunter2|should-not-leak/, 'no secrets in the DEA log');
    const status: any = await bus.request('dea.status', {}, 2000);
    t.equal(status.id, deaId, 'still answering');
  });

  await t.test('SIGTERM stops every instance (DEA_SHUTDOWN) and exits 0', async (t) => {
    const reply: any = await bus.request(`dea.${deaId}.start`, startRequest({ sha1, index: 4 }), 5000);
    const reg = await rec.waitFor('router.register', (r) => r.private_instance_id === reply.instance, 'registered', 15_000);
    const { pid } = await getJson(reg.port, '/env');
    const result = await dea.stop();
    t.same(result, { code: 0, signal: null });
    t.match(rec.of('droplet.exited').find((e) => e.instance === reply.instance), { reason: 'DEA_SHUTDOWN' });
    t.notOk(isAlive(pid), 'instance gone with the DEA');
  });
});
