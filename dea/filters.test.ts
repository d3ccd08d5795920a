import t from 'tap';
import { matchesFilters, stopTargets, type FilterableInstance } from './filters';

const a0: FilterableInstance = { appId: 'a', version: 'v1', instanceId: 'i0', index: 0, state: 'RUNNING' };
const a1: FilterableInstance = { appId: 'a', version: 'v2', instanceId: 'i1', index: 1, state: 'STARTING' };
const a2: FilterableInstance = { appId: 'a', version: 'v1', instanceId: 'i2', index: 2, state: 'CRASHED' };
const b0: FilterableInstance = { appId: 'b', version: 'v1', instanceId: 'j0', index: 0, state: 'RUNNING' };
const all = [a0, a1, a2, b0];

t.test('matchesFilters: every given filter must hold', async (t) => {
  const ids = (f: Parameters<typeof matchesFilters>[1]) => all.filter((i) => matchesFilters(i, f)).map((i) => i.instanceId);
  t.same(ids({ droplet: 'a' }), ['i0', 'i1', 'i2']);
  t.same(ids({ droplet: 'a', version: 'v1' }), ['i0', 'i2']);
  t.same(ids({ droplet: 'a', indices: [1, 2] }), ['i1', 'i2']);
  t.same(ids({ droplet: 'a', instances: ['i0', 'j0'] }), ['i0']);
  t.same(ids({ droplet: 'a', states: ['RUNNING', 'STARTING'] }), ['i0', 'i1']);
  t.same(ids({ droplet: 'a', version: 'v1', indices: [1] }), []);
  t.same(ids({ droplet: 'c' }), []);
  t.same(ids({ droplet: 'a', indices: [] }), [], 'an empty list matches nothing');
});

t.test('stopTargets leaves crashed instances unless asked for', async (t) => {
  t.same(stopTargets(all, { droplet: 'a' }).map((i) => i.instanceId), ['i0', 'i1']);
  t.same(stopTargets(all, { droplet: 'a', instances: ['i2'] }).map((i) => i.instanceId), ['i2']);
  t.same(stopTargets(all, { droplet: 'a', states: ['CRASHED'] }).map((i) => i.instanceId), ['i2']);
  t.same(stopTargets([{ ...a0, state: 'STOPPED' }], { droplet: 'a' }), []);
});
