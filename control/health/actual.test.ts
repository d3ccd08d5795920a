import t from 'tap';
import type { HeartbeatDroplet } from '../../bus/messages';
import { ActualState } from './actual';

const hb = (instance: string, index: number, state: HeartbeatDroplet['state'] = 'RUNNING', version = 'v-1', droplet = 'app'): HeartbeatDroplet =>
  ({ droplet, version, instance, index, state, state_timestamp: 1 });

t.test('a heartbeat replaces what its DEA said before', async (t) => {
  const a = new ActualState();
  a.heartbeat({ dea: 'd1', droplets: [hb('i1', 0), hb('i2', 1, 'STARTING')] }, 1000);
  a.heartbeat({ dea: 'd2', droplets: [hb('i3', 2)] }, 1000);
  t.same(a.ofDroplet('app').map((i) => i.instance).sort(), ['i1', 'i2', 'i3']);
  a.heartbeat({ dea: 'd1', droplets: [hb('i2', 1)] }, 2000);
  t.same(a.ofDroplet('app').map((i) => [i.instance, i.state, i.firstSeen, i.lastSeen]).sort(), [
    ['i2', 'RUNNING', 1000, 2000],
    ['i3', 'RUNNING', 1000, 1000],
  ], 'i1 is gone from d1, i2 keeps its first sighting');
  t.equal(a.healthy('app', 'v-1'), 2);
  t.equal(a.healthy('app', 'v-2'), 0);
});

t.test('ended states in a heartbeat are not kept', async (t) => {
  const a = new ActualState();
  a.heartbeat({ dea: 'd1', droplets: [hb('i1', 0, 'CRASHED'), hb('i2', 0, 'STOPPING')] }, 1);
  t.same(a.ofDroplet('app').map((i) => i.instance), ['i2']);
  t.equal(a.healthy('app', 'v-1'), 0, 'STOPPING is not healthy');
});

t.test('droplet.exited removes the instance at once', async (t) => {
  const a = new ActualState();
  a.heartbeat({ dea: 'd1', droplets: [hb('i1', 0), hb('i2', 1)] }, 1);
  t.equal(a.exited({ instance: 'i1' })?.index, 0);
  t.equal(a.exited({ instance: 'i1' }), undefined, 'a second exit changes nothing');
  t.same(a.ofDroplet('app').map((i) => i.instance), ['i2']);
});

t.test('instances without a heartbeat for droplet_lost are lost', async (t) => {
  const a = new ActualState();
  a.heartbeat({ dea: 'dead', droplets: [hb('i1', 0)] }, 0);
  a.heartbeat({ dea: 'alive', droplets: [hb('i2', 1)] }, 0);
  a.heartbeat({ dea: 'alive', droplets: [hb('i2', 1)] }, 25_000);
  t.same(a.pruneLost(30_000, 30_000), [], 'not before droplet_lost');
  t.same(a.pruneLost(30_001, 30_000).map((i) => i.instance), ['i1']);
  t.same([...a.droplets()], ['app']);
  t.same(a.ofDroplet('app').map((i) => i.instance), ['i2']);
});

t.test('an instance that moved to another DEA is not removed by the old one', async (t) => {
  const a = new ActualState();
  a.heartbeat({ dea: 'd1', droplets: [hb('i1', 0)] }, 1);
  a.heartbeat({ dea: 'd2', droplets: [hb('i1', 0)] }, 2);
  a.heartbeat({ dea: 'd1', droplets: [] }, 3);
  t.same(a.ofDroplet('app').map((i) => i.dea), ['d2']);
});
