// The controller's side of failures, on a real bus with DEAs and a health
// manager played by the test: an app shows FLAPPING while the health
// manager reports a flapping index, a `healthmanager.giveup` notice becomes
// a `gave_up` event, and an instance placed on a DEA that fell silent is
// placed elsewhere once that DEA drops out of the pool, not after the whole
// placement grace.

import t from 'tap';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { HM_GIVEUP_SUBJECT } from '../bus/platform';
import { ADMIN, fakeDea, fakeStager, startController, testBus } from './controller_harness';
import { eventually, startNats } from './harness';

const PACKAGE = gzipSync(Buffer.from('an app'));
const SHA = createHash('sha256').update(PACKAGE).digest('hex');

t.test('failures as the controller shows and handles them', async (t) => {
  const nats = await startNats(t);
  const bus = await testBus(t, nats);
  const live = fakeDea(t, bus, { id: 'dea-live', memory: 2048 });
  fakeStager(t, bus, () => ({ droplet: 'd1', sha1: 'd1', runtime: 'node', framework: 'node', start_command: 'node server.js', log: '' }));
  const controller = await startController(t, nats, { args: ['--reconcile-interval', '1'] });
  const api = controller.api;
  api.token = await api.login(ADMIN.email, ADMIN.password);

  const startApp = async (name: string, instances: number): Promise<string> => {
    const id: string = (await api.post('/apps', { name, instances })).json().id;
    t.equal((await api.request('PUT', `/apps/${name}/application`, { raw: PACKAGE, headers: { 'x-skiff-sha256': SHA } })).status, 202);
    await eventually(async () => (await api.get(`/apps/${name}`)).json().package_state === 'STAGED', `${name} staged`);
    t.equal((await api.put(`/apps/${name}`, { state: 'STARTED' })).status, 200);
    return id;
  };

  await t.test('FLAPPING while the health manager reports a flapping index', async (t) => {
    const id = await startApp('loop', 1);
    t.equal((await api.get('/apps/loop')).json().state, 'STARTED', 'no health manager: the desired state');
    let answer: unknown = { indices: [{ index: 0, since: 1764100000 }] };
    const asked: any[] = [];
    const hm = bus.subscribe('healthmanager.status', (msg) => {
      asked.push(JSON.parse(new TextDecoder().decode(msg.data)));
      msg.respond(answer as object);
    });
    t.teardown(() => hm.unsubscribe());
    t.equal((await api.get('/apps/loop')).json().state, 'FLAPPING', 'GET /apps/:name');
    t.same(asked.at(-1), { droplet: id, version: 'd1-1', state: 'FLAPPING' }, 'asked about the running version');
    t.equal(((await api.get('/apps')).json() as Array<{ name: string; state: string }>).find((a) => a.name === 'loop')?.state, 'FLAPPING', 'GET /apps');
    answer = { indices: [] };
    t.equal((await api.get('/apps/loop')).json().state, 'STARTED', 'no flapping index: STARTED');
    answer = { indices: 'secret-token-123' };
    t.equal((await api.get('/apps/loop')).json().state, 'STARTED', 'a malformed answer: STARTED');
    await eventually(() => /rejected message subject=healthmanager.status error="indices must be/.test(controller.log()), 'and it is counted and logged');
    answer = { indices: [{ index: 0, since: 1 }] };
    t.equal((await api.put('/apps/loop', { state: 'STOPPED' })).json().state, 'STOPPED', 'a stopped app is STOPPED, whatever the manager says');
    t.notMatch(controller.log(), /secret-token-123/, 'bodies stay out of the log');
  });

  await t.test('a give-up notice becomes one gave_up event of the current version', async (t) => {
    const id = await startApp('quitter', 1);
    bus.publish(HM_GIVEUP_SUBJECT, { droplet: id, version: 'd0-7', index: 0, crashes: 5 });
    bus.publish(HM_GIVEUP_SUBJECT, { droplet: id, version: 'd1-1', index: 'zero' });
    bus.publish(HM_GIVEUP_SUBJECT, { droplet: id, version: 'd1-1', index: 0, crashes: 5 });
    await eventually(async () => (await api.get('/apps/quitter/events')).json().some((e: { type: string }) => e.type === 'gave_up'), 'a gave_up event');
    const events = (await api.get('/apps/quitter/events')).json() as Array<{ type: string; actor: string; description: string }>;
    const gaveUp = events.filter((e) => e.type === 'gave_up');
    t.equal(gaveUp.length, 1, 'one event: the notice about an old version explains nothing');
    t.match(gaveUp[0], { actor: 'health manager', description: /gave up on index 0 after 5 crashes/ });
    await eventually(() => /rejected message subject=healthmanager.giveup/.test(controller.log()), 'the malformed notice counted and logged');
  });

  await t.test('an instance placed on a DEA that fell silent moves once the DEA leaves the pool', async (t) => {
    let dying!: ReturnType<typeof fakeDea>;
    // The DEA lives as long as this subtest: its end is the DEA's death (no more advertising, no answers).
    await t.test('a roomier DEA takes an instance, then dies', async (t) => {
      dying = fakeDea(t, bus, { id: 'dea-dying', memory: 8192 });
      const id = await startApp('spread', 2);
      await eventually(() => dying.running.some((i) => i.droplet === id) && live.running.some((i) => i.droplet === id), 'one instance on each DEA');
    });
    const diedAt = Date.now();
    const startsBefore = live.starts.length;
    // Both DEAs last advertised one instance each: the roomier, dead one wins the next placement until it expires (10 s).
    await eventually(() => live.starts.length > startsBefore, 'the missing index placed on the live DEA', 16_000);
    const movedAfter = Date.now() - diedAt;
    t.ok(movedAfter < 16_000, `placed on the live DEA after ${movedAfter} ms: within the pool's 10 s expiry and a pass, not after a 20 s grace`);
  });
});
