import t from 'tap';
import { summariseInstances, type CurrentStart } from './wait';

const v2: CurrentStart = { version: 'd-2', newVersion: true, since: 100 };

t.test('one state per index, from the instances of this start', async (t) => {
  t.same(summariseInstances([], 0, v2).text, '0/0 running');
  t.equal(summariseInstances([], 0, v2).done, true);
  t.same(summariseInstances([{ index: 0, state: 'STARTING', version: 'd-2' }], 1, v2).text, '0/1 running (1 STARTING)');
  const mixed = summariseInstances(
    [
      { index: 0, state: 'RUNNING', version: 'd-2', instance: 'a' },
      { index: 1, state: 'CRASHED', version: 'd-2', instance: 'b', since: 120 },
      { index: 1, state: 'DOWN', version: 'd-2', instance: '' },
      { index: 2, state: 'DOWN', version: 'd-2', instance: '' },
    ],
    3,
    v2,
  );
  t.equal(mixed.text, '1/3 running (1 CRASHED, 1 DOWN)', 'a crashed index awaiting its restart is counted once');
  t.same(mixed.running_ids, ['a']);
  t.equal(mixed.allCrashed, false);
  t.equal(summariseInstances([{ index: 0, state: 'RUNNING', version: 'd-2' }, { index: 1, state: 'RUNNING', version: 'd-2' }], 2, v2).done, true);
});

t.test('old versions and old crashes are not part of this start', async (t) => {
  const listing = [
    { index: 0, state: 'RUNNING', version: 'd-1', since: 50, instance: 'old' },
    { index: 0, state: 'CRASHED', version: 'd-1', since: 60, instance: 'older' },
    { index: 0, state: 'STARTING', version: 'd-2', since: 101, instance: 'new' },
  ];
  const summary = summariseInstances(listing, 1, v2);
  t.equal(summary.text, '0/1 running (1 STARTING)', 'no "RUNNING (old)", no crash of the previous version');
  t.same(summary.crashed, []);
  t.equal(summariseInstances([{ index: 0, state: 'RUNNING', version: 'd-1', since: 50 }], 1, v2).done, false, 'the old version running is not done');

  // Scaling out keeps the version: a crash before the change is history, one after it is news.
  const scaled: CurrentStart = { version: 'd-2', newVersion: false, since: 200 };
  const history = [
    { index: 0, state: 'RUNNING', version: 'd-2', since: 150, instance: 'a' },
    { index: 0, state: 'CRASHED', version: 'd-2', since: 140, instance: 'gone' },
    { index: 1, state: 'STARTING', version: 'd-2', since: 201, instance: 'b' },
  ];
  t.equal(summariseInstances(history, 2, scaled).text, '1/2 running (1 STARTING)');
  t.same(summariseInstances(history, 2, scaled).crashed, []);
  const fresh = [...history.slice(0, 2), { index: 1, state: 'CRASHED', version: 'd-2', since: 203, instance: 'b' }];
  t.same(summariseInstances(fresh, 2, scaled).crashed.map((i) => i.instance), ['b']);
});

t.test('every index crashed and none runs: the start failed', async (t) => {
  const one = summariseInstances([{ index: 0, state: 'CRASHED', version: 'd-2', since: 101, instance: 'x' }, { index: 0, state: 'DOWN', version: 'd-2' }], 1, v2);
  t.equal(one.allCrashed, true);
  t.equal(one.text, '0/1 running (1 CRASHED)');
  t.equal(one.crashed[0]!.instance, 'x');
  const restarting = summariseInstances(
    [
      { index: 0, state: 'CRASHED', version: 'd-2', since: 101, instance: 'x' },
      { index: 0, state: 'STARTING', version: 'd-2', since: 102, instance: 'y' },
      { index: 1, state: 'CRASHED', version: 'd-2', since: 103, instance: 'z' },
    ],
    2,
    v2,
  );
  t.equal(restarting.allCrashed, true, 'a restart on its way does not hold off the verdict: every index crashed');
  t.same(restarting.crashed.map((i) => i.instance), ['z', 'x'], 'newest crash first');
  const oneRuns = summariseInstances(
    [
      { index: 0, state: 'CRASHED', version: 'd-2', since: 101, instance: 'x' },
      { index: 0, state: 'RUNNING', version: 'd-2', since: 102, instance: 'y' },
      { index: 1, state: 'CRASHED', version: 'd-2', since: 103, instance: 'z' },
    ],
    2,
    v2,
  );
  t.equal(oneRuns.allCrashed, false, 'one index runs: not (yet) a failure');
  t.equal(summariseInstances([{ index: 0, state: 'CRASHED', version: 'd-1', since: 90 }], 1, v2).allCrashed, false, "the previous version's crash is not this start's");
});
