// A crashed instance's directory and logs are kept for --crash-keep (an hour
// by default), readable meanwhile, then removed.

import { existsSync } from 'node:fs';
import t from 'tap';
import { requestAll } from '../bus/connection';
import { deaFilesSubject } from '../bus/platform';
import { eventually, startNats } from './harness';
import { ENV_APP, makeDataDir, putDroplet, recorder, startDea, startRequest } from './dea_harness';

t.test('a crashed instance is kept for --crash-keep, then removed', async (t) => {
  const nats = await startNats(t);
  const rec = await recorder(t, nats.url);
  const dataDir = makeDataDir(t);
  const first = 45000 + Math.floor(Math.random() * 1000) * 10;
  startDea(t, nats.url, dataDir, ['--port-range', `${first}-${first + 9}`, '--crash-keep', '3', '--index', '4']);
  const deaId: string = (await rec.waitFor('dea.advertise', () => true, 'first dea.advertise', 15_000)).id;
  const bus = rec.bus;
  const sha1 = await putDroplet(bus, { 'server.js': ENV_APP }, 'node server.js');

  const reply: any = await bus.request(`dea.${deaId}.start`, startRequest({ sha1 }), 5000);
  const reg = await rec.waitFor('router.register', (r) => r.private_instance_id === reply.instance, 'registered', 15_000);
  await fetch(`http://127.0.0.1:${reg.port}/exit`).then((r) => r.text());
  await rec.waitFor('droplet.exited', (e) => e.instance === reply.instance, 'droplet.exited CRASHED', 5000);
  const crashedAt = Date.now();
  const dir = `${dataDir}/dea/4/instances/${reply.instance}`;

  t.ok(existsSync(dir), 'the directory is kept');
  const log: any = await bus.request(deaFilesSubject(deaId), { droplet: 'app-1', instance: reply.instance, path: 'logs/stdout.log' }, 2000);
  t.equal(log.type, 'file', 'its logs can be read');
  t.equal((await requestAll(bus, 'dea.find.droplet', { droplet: 'app-1', states: ['CRASHED'] }, { windowMs: 200 })).length, 1, 'listed as CRASHED');

  await eventually(() => !existsSync(dir), 'the directory to go after the keep time', 10_000);
  t.ok(Date.now() - crashedAt >= 2500, `not before the keep time (${Date.now() - crashedAt} ms)`);
  t.same(await requestAll(bus, 'dea.find.droplet', { droplet: 'app-1' }, { windowMs: 200 }), [], 'no longer listed');
});
