import t from 'tap';
import type { DeaFindDropletReply } from '../../bus/messages';
import { applyChange, applyRestart, applyStaged, convergence, plan, sameServices } from './desired';
import type { AppRecord } from './store';

function app(overrides: Partial<AppRecord> = {}): AppRecord {
  return {
    id: 'app1', name: 'shop', owner: 'ann@example.com', state: 'STOPPED', instances: 2, memory: 256, disk: 1024,
    uris: ['shop.localhost'], env: {}, command: null, package_state: 'STAGED', staging_error: null,
    droplet: 'abc', droplet_object: 'abc', staging: { runtime: 'node', framework: 'node', command: 'node s.js' },
    bits: null, staging_id: null, run_count: 1, last_updated: 100, created: 100, updated: 100,
    ...overrides,
  };
}

function changed(before: AppRecord, change: Parameters<typeof applyChange>[1]): AppRecord {
  const result = applyChange(before, change, 200);
  if (!result.ok) throw new Error(result.error);
  return result.app;
}

t.test('starting needs a droplet and bumps the run count', async (t) => {
  t.same(applyChange(app({ droplet: null }), { state: 'STARTED' }, 200), { ok: false, status: 400, error: 'app shop has no droplet yet: upload its bits first' });
  const started = changed(app(), { state: 'STARTED' });
  t.equal(started.run_count, 2);
  t.equal(started.last_updated, 200);
  t.same(plan(app(), started), [{ kind: 'start', indices: [0, 1] }]);
});

t.test('stopping a started app stops all its instances', async (t) => {
  const running = app({ state: 'STARTED' });
  const stopped = changed(running, { state: 'STOPPED' });
  t.equal(stopped.run_count, 1);
  t.same(plan(running, stopped), [{ kind: 'stop', filter: { droplet: 'app1' } }]);
});

t.test('scaling a started app starts or stops only the indices that change', async (t) => {
  const running = app({ state: 'STARTED', instances: 2 });
  const up = changed(running, { instances: 4 });
  t.equal(up.run_count, 1, 'scaling is no restart');
  t.same(plan(running, up), [{ kind: 'start', indices: [2, 3] }]);
  const down = changed(running, { instances: 1 });
  t.same(plan(running, down), [{ kind: 'stop', filter: { droplet: 'app1', indices: [1] } }]);
  t.same(plan(app(), changed(app(), { instances: 5 })), [], 'a stopped app only records the count');
});

t.test('memory, env or command changes restart a started app with a new version', async (t) => {
  const running = app({ state: 'STARTED' });
  for (const change of [{ memory: 512 }, { env: { A: 'b' } }, { command: 'node other.js' }]) {
    const next = changed(running, change);
    t.equal(next.run_count, 2, JSON.stringify(change));
    t.same(plan(running, next), [{ kind: 'start', indices: [0, 1] }, { kind: 'replace-old-versions' }]);
  }
  t.equal(changed(app(), { memory: 512 }).run_count, 1, 'a stopped app is not restarted');
});

t.test('new bindings restart a started app, rolling, so that its instances see them', async (t) => {
  const running = app({ state: 'STARTED' });
  const bound = changed(running, { services: ['s1', 's2'] });
  t.same(bound.services, ['s1', 's2']);
  t.equal(bound.run_count, 2, 'a new version');
  t.equal(bound.last_updated, 200);
  t.same(plan(running, bound), [{ kind: 'start', indices: [0, 1] }, { kind: 'replace-old-versions' }]);
  const reordered = changed(bound, { services: ['s2', 's1'] });
  t.equal(reordered.run_count, 2, 'the same services in another order: nothing changes');
  t.ok(sameServices(bound, reordered));
  const unbound = changed(bound, { services: [] });
  t.notOk('services' in unbound, 'no services: no field');
  t.equal(unbound.run_count, 3, 'unbinding restarts too');
  const stopped = changed(app(), { services: ['s1'] });
  t.equal(stopped.run_count, 1, 'a stopped app only records them');
  t.same(plan(app(), stopped), []);
});

t.test('new uris go to the DEAs as dea.update', async (t) => {
  const running = app({ state: 'STARTED' });
  t.same(plan(running, changed(running, { uris: ['a.localhost'] })), [{ kind: 'update-routes', uris: ['a.localhost'], session_affinity: false }]);
});

t.test('session affinity reaches running instances through dea.update, without a restart', async (t) => {
  const running = app({ state: 'STARTED' });
  const on = changed(running, { session_affinity: true });
  t.equal(on.session_affinity, true);
  t.equal(on.run_count, 1, 'no new version: a restart would drop the sessions affinity is for');
  t.equal(on.last_updated, 200, 'a change of desired state');
  t.same(plan(running, on), [{ kind: 'update-routes', uris: ['shop.localhost'], session_affinity: true }]);
  t.same(plan(on, changed(on, { session_affinity: false })), [{ kind: 'update-routes', uris: ['shop.localhost'], session_affinity: false }], 'and off again');
  t.same(plan(running, changed(running, { session_affinity: false })), [], 'a record from before the field counts as off');
  t.same(plan(app(), changed(app(), { session_affinity: true })), [], 'a stopped app only records it');
});

t.test('a staged droplet gives a started app a new version, a stopped one just the droplet', async (t) => {
  const droplet = { sha1: 'def', object: 'def', runtime: 'node', framework: 'node', command: 'node s.js' };
  const running = app({ state: 'STARTED', package_state: 'STAGING', staging_id: 's1' });
  const next = applyStaged(running, droplet, 300);
  t.equal(next.package_state, 'STAGED');
  t.equal(next.staging_id, null);
  t.equal(next.run_count, 2);
  t.same(plan(running, next), [{ kind: 'start', indices: [0, 1] }, { kind: 'replace-old-versions' }]);
  const stopped = applyStaged(app({ package_state: 'STAGING' }), droplet, 300);
  t.equal(stopped.run_count, 1);
  t.same(plan(app(), stopped), []);
});

function instance(index: number, version: string, state: DeaFindDropletReply['state'], id = `${version}-${index}`): DeaFindDropletReply {
  return { dea: 'd', droplet: 'app1', version, instance: id, index, state, state_timestamp: 0 };
}

t.test('convergence places missing indices and retires old versions once replaced', async (t) => {
  const running = app({ state: 'STARTED', instances: 3, run_count: 2 });
  const result = convergence(running, [
    instance(0, 'abc-2', 'RUNNING'),
    instance(0, 'abc-1', 'RUNNING'),
    instance(1, 'abc-2', 'STARTING'),
    instance(1, 'abc-1', 'RUNNING'),
    instance(2, 'abc-2', 'CRASHED'),
    instance(3, 'abc-2', 'RUNNING'),
  ], new Set());
  t.same(result.place, [2], 'a crashed instance does not count');
  t.same(result.stop.sort(), ['abc-1-0', 'abc-2-3'], 'the old one at a STARTING index keeps running');
  t.same(convergence(running, [], new Set([0, 1])).place, [2], 'indices just placed are not placed twice');
  t.same(convergence(app(), [instance(0, 'abc-1', 'RUNNING')], new Set()), { place: [], stop: [] }, 'stopped apps are left alone');
});

t.test('a restart gives a started app a new version, which rolls its instances over', async (t) => {
  const started = app({ state: 'STARTED', instances: 2 });
  const restarted = applyRestart(started, 2000);
  t.ok(restarted.ok);
  if (!restarted.ok) return;
  t.equal(restarted.app.run_count, started.run_count + 1, 'new run count: a new version');
  t.equal(restarted.app.last_updated, 2000);
  t.same(plan(started, restarted.app), [{ kind: 'start', indices: [0, 1] }, { kind: 'replace-old-versions' }], 'start the new version, then replace the old');
  const stopped = applyRestart(app({ state: 'STOPPED' }), 2000);
  t.same(stopped.ok ? 'ok' : stopped.status, 409, 'a stopped app is started, not restarted');
});

t.test('an autoscale policy brings the count into its range, and a manual count outside it is refused', async (t) => {
  const started = app({ state: 'STARTED', instances: 6 });
  const on = applyChange(started, { autoscale: { min: 1, max: 4, target_rps: 50 } }, 2000);
  t.ok(on.ok);
  if (!on.ok) return;
  t.equal(on.app.instances, 4, 'down to max');
  t.same(plan(started, on.app), [{ kind: 'stop', filter: { droplet: started.id, indices: [4, 5] } }]);
  t.equal(on.app.run_count, started.run_count, 'a policy alone restarts nothing');
  const outside = applyChange(on.app, { instances: 5 }, 2001);
  t.same(outside, { ok: false, status: 400, error: "instances must be within the autoscale policy's 1-4: change the policy (skiff autoscale) or turn it off" });
  const inside = applyChange(on.app, { instances: 2 }, 2001);
  t.ok(inside.ok && inside.app.instances === 2, 'within the range a manual scale is fine');
  const off = applyChange(on.app, { autoscale: null, instances: 8 }, 2002);
  t.ok(off.ok && off.app.instances === 8 && off.app.autoscale === null, 'off: any count again');
});
