// One uid per app (design.md, "Tenancy and the bus"): a real controller on
// a real bus hands each app its own uid of --app-uids when the app is
// created, sends it in dea.<uuid>.start, frees it when the app is deleted,
// gives an app from before uids one when it is placed, and never hands one
// uid out twice, even to two controllers at once.

import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import type { Bus } from '../bus/connection';
import { DEFAULT_APP_UIDS, inRange } from '../bus/uids';
import { AppUids } from '../control/controller/uids';
import { ADMIN, fakeDea, fakeStager, startController, testBus } from './controller_harness';
import { eventually, startNats } from './harness';

const PACKAGE = gzipSync(Buffer.from('an app'));
const SHA = createHash('sha256').update(PACKAGE).digest('hex');
const FIRST = 3_000_000;

async function kv(bus: Bus, name: string) {
  return bus.nats.jetstream().views.kv(name);
}

async function record(bus: Bus, id: string): Promise<any> {
  const entry = await (await kv(bus, 'skiff_apps')).get(id);
  return entry && entry.operation === 'PUT' ? JSON.parse(new TextDecoder().decode(entry.value)) : undefined;
}

/** The app id holding a uid in skiff_app_uids, or undefined when the key is gone. */
async function holder(bus: Bus, uid: number): Promise<string | undefined> {
  const entry = await (await kv(bus, 'skiff_app_uids')).get(`uid.${uid}`);
  return entry && entry.operation === 'PUT' ? JSON.parse(new TextDecoder().decode(entry.value)).app : undefined;
}

t.test('each app its own uid: taken at create, sent to DEAs, freed at delete', async (t) => {
  const nats = await startNats(t);
  const bus = await testBus(t, nats);
  const dea = fakeDea(t, bus, { id: 'dea-u', memory: 8192 });
  fakeStager(t, bus, () => ({ droplet: 'd1', sha1: 'd1', runtime: 'node', framework: 'node', start_command: 'node server.js', log: 'ok\n' }));
  // Five uids: enough to see the cursor go round and the range run out.
  const controller = await startController(t, nats, { args: ['--reconcile-interval', '1', '--app-uids', `${FIRST}-${FIRST + 4}`] });
  const api = controller.api;
  api.token = await api.login(ADMIN.email, ADMIN.password);
  const create = async (name: string): Promise<string> => {
    const res = await api.post('/apps', { name });
    t.equal(res.status, 201, `create ${name}`);
    return res.json().id;
  };
  const stage = async (name: string): Promise<void> => {
    t.equal((await api.request('PUT', `/apps/${name}/application`, { raw: PACKAGE, headers: { 'x-skiff-sha256': SHA } })).status, 202);
    await eventually(async () => (await api.get(`/apps/${name}`)).json().package_state === 'STAGED', `${name} staged`);
  };

  const a = await create('alpha');
  const b = await create('beta');
  const uidA = (await record(bus, a)).uid;
  const uidB = (await record(bus, b)).uid;
  // A fresh platform starts at a random place of the range; from there, in order, round the range.
  const at = (step: number): number => FIRST + ((uidA - FIRST + step) % 5);
  t.ok(uidA >= FIRST && uidA <= FIRST + 4, 'the first app gets a uid of the range');
  t.equal(uidB, at(1), 'the second app the next one');
  t.equal(await holder(bus, uidA), a, 'skiff_app_uids: uid.<n> names the app holding it');
  t.equal(await holder(bus, uidB), b);

  await t.test('dea.<uuid>.start carries the app\'s uid', async (t) => {
    await stage('alpha');
    t.equal((await api.put('/apps/alpha', { state: 'STARTED' })).status, 200);
    await eventually(() => dea.starts.some((s) => s.droplet === a), 'alpha placed');
    t.equal(dea.starts.find((s) => s.droplet === a).uid, uidA);
  });

  await t.test('deleting an app frees its uid, and the cursor does not hand it out again at once', async (t) => {
    t.equal((await api.delete('/apps/beta')).status, 204);
    t.equal(await holder(bus, uidB), undefined, 'uid.<beta\'s uid> is gone from skiff_app_uids');
    t.equal(await holder(bus, uidA), a, 'alpha keeps its uid');
    const c = await create('gamma');
    t.equal((await record(bus, c)).uid, at(2), 'the next app gets a fresh uid, not the one just freed');
  });

  await t.test('an app from before uids gets one when it is placed, kept in its record', async (t) => {
    const old = await create('old');
    await stage('old');
    // As an older controller wrote it: no uid, and none held for it.
    const apps = await kv(bus, 'skiff_apps');
    const legacy = await record(bus, old);
    await (await kv(bus, 'skiff_app_uids')).delete(`uid.${legacy.uid}`);
    delete legacy.uid;
    await apps.put(old, new TextEncoder().encode(JSON.stringify(legacy)));

    t.equal((await api.put('/apps/old', { state: 'STARTED' })).status, 200);
    await eventually(() => dea.starts.some((s) => s.droplet === old), 'old placed');
    const uid = dea.starts.find((s) => s.droplet === old).uid;
    t.equal(uid, at(4), 'a uid from the cursor on');
    t.equal((await record(bus, old)).uid, uid, 'kept in the app record');
    t.equal(await holder(bus, uid), old, 'and held in skiff_app_uids');
    t.match(controller.log(), /app given its uid/);
  });

  await t.test('the range goes round past the held uids, and a full range is a clear 503', async (t) => {
    // Held: at(0) (alpha), at(2) (gamma), at(4) (old). Free: at(1) and at(3).
    const d = await create('delta');
    const e = await create('epsilon');
    t.same([(await record(bus, d)).uid, (await record(bus, e)).uid], [at(1), at(3)], 'the free ones, in cursor order');
    const full = await api.post('/apps', { name: 'zeta' });
    t.equal(full.status, 503);
    t.match(full.json().description, /no free app uid/);
    t.equal((await api.get('/apps/zeta')).status, 404, 'no app without a uid');
    t.equal((await api.delete('/apps/delta')).status, 204);
    t.equal(await holder(bus, at(1)), undefined);
    t.equal((await api.post('/apps', { name: 'zeta' })).status, 201, 'a freed uid serves once the range has gone round');
  });
});

t.test('two controllers allocating at once never share a uid', async (t) => {
  const nats = await startNats(t);
  const busA = await testBus(t, nats);
  const busB = await testBus(t, nats);
  const range = { first: FIRST, last: FIRST + 29 };
  const [one, two] = await Promise.all([AppUids.open(busA, range), AppUids.open(busB, range)]);
  const uids = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? one : two).allocate(`app-${i}`)));
  t.equal(new Set(uids).size, 24, `24 distinct uids (${uids.join(',')})`);
  t.ok(uids.every((u) => u >= range.first && u <= range.last), 'all in the range');
  for (const [i, uid] of uids.entries()) t.equal(await one.holder(uid), `app-${i}`, `uid ${uid} held by app-${i}`);
  await two.free(uids[0]!, 'app-999');
  t.equal(await one.holder(uids[0]!), 'app-0', 'only the holder frees a uid');
  await two.free(uids[0]!, 'app-0');
  t.equal(await one.holder(uids[0]!), undefined, 'freed by its holder');
});

t.test('two platforms on one host, with the same range, start handing out uids at different places', async (t) => {
  const firsts: number[] = [];
  for (let i = 0; i < 2; i++) {
    const nats = await startNats(t);
    const bus = await testBus(t, nats);
    firsts.push(await (await AppUids.open(bus, DEFAULT_APP_UIDS)).allocate(`app-${i}`));
  }
  t.ok(firsts.every((uid) => inRange(DEFAULT_APP_UIDS, uid)));
  t.not(firsts[0], firsts[1], `first uids ${firsts.join(' and ')} (the same one would come up once in 100000 runs)`);
});
