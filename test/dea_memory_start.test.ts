// An instance over its memory limit by the time it listens never becomes
// RUNNING: the DEA samples it once before, so no router gets its route and
// no `skiff push` sees it run (design.md, "The first minutes").

import t from 'tap';
import { startNats } from './harness';
import { makeDataDir, putDroplet, recorder, startDea, startRequest } from './dea_harness';

const HOG = `
globalThis.hog = Buffer.alloc(200 * 1024 * 1024, 1);
require('node:http').createServer((q, s) => s.end('hog')).listen(Number(process.env.PORT), process.env.VCAP_APP_HOST, () => console.log('hog listening'));
`;

t.test('an instance over its limit when it starts listening is killed before it gets a route', async (t) => {
  const nats = await startNats(t);
  const rec = await recorder(t, nats.url);
  const first = 40000 + Math.floor(Math.random() * 2000) * 10;
  startDea(t, nats.url, makeDataDir(t), ['--port-range', `${first}-${first + 9}`, '--start-timeout', '10', '--memory', '1024']);
  const advert = await rec.waitFor('dea.advertise', () => true, 'first dea.advertise', 15_000);
  const sha1 = await putDroplet(rec.bus, { 'server.js': HOG }, 'node server.js');
  // The periodic sample (every 2 s) lands between allocation and listening now and then; three starts make that moot.
  for (const index of [0, 1, 2]) {
    const reply: any = await rec.bus.request(`dea.${advert.id}.start`, startRequest({ sha1, index, limits: { mem: 64, disk: 256, fds: 100 } }), 5000);
    const exited = await rec.waitFor('droplet.exited', (e) => e.instance === reply.instance, `instance ${index} to end`, 15_000);
    t.match(exited, { reason: 'CRASHED', exit_description: 'out of memory' }, `instance ${index} crashed out of memory`);
  }
  t.same(rec.of('router.register'), [], 'no route was ever registered');
});
