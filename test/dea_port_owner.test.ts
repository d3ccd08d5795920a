// What answers on an instance's port must be the instance: a port another
// process took after the DEA's bind probe (another DEA on the same range)
// never gets the app's route.

import * as net from 'node:net';
import t from 'tap';
import { freePort, sleep, startNats } from './harness';
import { makeDataDir, putDroplet, recorder, startDea, startRequest } from './dea_harness';

t.test('a port taken by a stranger is not the app: no route, and a start timeout', async (t) => {
  const nats = await startNats(t);
  const rec = await recorder(t, nats.url);
  const port = await freePort();
  startDea(t, nats.url, makeDataDir(t), ['--port-range', `${port}-${port}`, '--start-timeout', '3', '--index', '5']);
  const deaId: string = (await rec.waitFor('dea.advertise', () => true, 'first dea.advertise', 15_000)).id;
  // An app that never listens: whatever answers on its port is someone else.
  const sha1 = await putDroplet(rec.bus, { 'x.txt': 'x' }, 'sleep 30');
  const reply: any = await rec.bus.request(`dea.${deaId}.start`, startRequest({ sha1 }), 5000);
  await sleep(300); // the DEA has probed the port and launched the app
  const stranger = net.createServer((socket) => socket.end());
  await new Promise<void>((resolve) => stranger.listen(port, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => stranger.close(() => resolve())));

  const exited = await rec.waitFor('droplet.exited', (e) => e.instance === reply.instance, 'the start to time out', 10_000);
  t.match(exited, { reason: 'CRASHED', exit_description: /did not accept connections/ });
  t.notOk(rec.of('router.register').some((r) => r.private_instance_id === reply.instance), 'the stranger\'s port was never registered as the app');
});
