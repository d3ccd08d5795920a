import t from 'tap';
import type { HeartbeatDroplet } from '../../bus/messages';
import type { AppDesiredState } from '../../bus/platform';
import { ActualState } from './actual';
import { analyze, restartDue } from './analysis';
import { Ledger } from './ledger';
import { DEFAULT_SETTINGS, type HealthSettings } from './settings';

const S: HealthSettings = { ...DEFAULT_SETTINGS, dropletLostMs: 30_000, minRestartDelayMs: 60_000, maxRestartDelayMs: 480_000 };
const app = (over: Partial<AppDesiredState> = {}): AppDesiredState =>
  ({ id: 'app', name: 'shop', state: 'STARTED', instances: 2, droplet: 'sha', run_count: 1, last_updated: 100, ...over });
const hb = (instance: string, index: number, state: HeartbeatDroplet['state'] = 'RUNNING', version = 'sha-1', droplet = 'app'): HeartbeatDroplet =>
  ({ droplet, version, instance, index, state, state_timestamp: 1 });

/** A manager's view over time: heartbeats, crashes, passes. */
function world(settings: HealthSettings = S) {
  const actual = new ActualState();
  const ledger = new Ledger(() => 0);
  return {
    actual,
    ledger,
    beat(dea: string, droplets: HeartbeatDroplet[], at: number) {
      actual.heartbeat({ dea, droplets }, at);
    },
    crash(instance: string, index: number, at: number, version = 'sha-1') {
      actual.exited({ instance });
      return ledger.crash('app', version, index, instance, at, Math.floor(at / 1000), settings);
    },
    pass(apps: AppDesiredState[], at: number) {
      actual.pruneLost(at, settings.dropletLostMs);
      ledger.sync(apps, at, settings, new Set(apps.flatMap((a) => actual.ofDroplet(a.id).map((i) => i.instance))));
      return analyze(apps, actual, ledger, at, settings);
    },
  };
}

t.test('restartDue: given up never, a crash at its backoff, else droplet_lost after the last sign of life', async (t) => {
  const m = { since: 0, lastSeen: 5000, lastStart: 0, vacatedAt: 0 };
  t.equal(restartDue(m, undefined, S), 35_000);
  t.equal(restartDue(m, { lastCrashAt: 6000, restartAt: 6000 }, S), 6000, 'an unanswered crash restarts at its time');
  t.equal(restartDue({ ...m, lastStart: 7000 }, { lastCrashAt: 6000, restartAt: 6000 }, S), 37_000, 'answered already: droplet_lost after the START');
  t.equal(restartDue(m, { lastCrashAt: 6000, restartAt: Infinity }, S), Infinity);
});

t.test('an instance whose DEA shut down is restarted at once, once', async (t) => {
  const w = world();
  w.beat('d1', [hb('i0', 0)], 0);
  w.pass([app({ instances: 1 })], 0);
  w.actual.exited({ instance: 'i0' });
  w.ledger.vacated('app', 'sha-1', 0, 5000);
  t.same(w.pass([app({ instances: 1 })], 5000), [{ droplet: 'app', op: 'START', last_updated: 100, version: 'sha-1', indices: [0], flapping: false }]);
  t.same(w.pass([app({ instances: 1 })], 6000), [], 'asked for already');
});

t.test('a lost instance (its DEA went silent) is restarted after droplet_lost, not before', async (t) => {
  const w = world();
  w.beat('d1', [hb('i0', 0), hb('i1', 1)], 0);
  t.same(w.pass([app()], 0), []);
  w.beat('d1', [hb('i0', 0), hb('i1', 1)], 10_000);
  t.same(w.pass([app()], 40_000), [], 'last heard 30 s ago: not lost yet');
  t.same(w.pass([app()], 40_001), [{ droplet: 'app', op: 'START', last_updated: 100, version: 'sha-1', indices: [0, 1], flapping: false }]);
  t.same(w.pass([app()], 50_000), [], 'asked once; not again before droplet_lost');
  t.same(w.pass([app()], 70_002), [{ droplet: 'app', op: 'START', last_updated: 100, version: 'sha-1', indices: [0, 1], flapping: false }], 'asked again when nothing came');
});

t.test('an index just wanted is left to the controller for droplet_lost', async (t) => {
  const w = world();
  w.beat('d1', [hb('i0', 0)], 0);
  t.same(w.pass([app({ instances: 1 })], 0), []);
  t.same(w.pass([app({ instances: 3 })], 1000), [], 'scaled up: the controller places them');
  w.beat('d1', [hb('i0', 0), hb('i1', 1)], 5000);
  const requests = w.pass([app({ instances: 3 })], 31_001);
  t.same(requests, [{ droplet: 'app', op: 'START', last_updated: 100, version: 'sha-1', indices: [2], flapping: false }], 'only the index that never came');
});

t.test('a crash restarts at once; a flapping index backs off; from the fifth crash it gives up', async (t) => {
  const w = world();
  const a = [app({ instances: 1 })];
  w.beat('d1', [hb('c1', 0)], 0);
  w.pass(a, 0);
  const starts: Array<[number, boolean]> = [];
  let at = 1000;
  for (let crash = 1; crash <= 5; crash++) {
    w.crash(`c${crash}`, 0, at);
    // Passes every 10 s until the START comes, or the flapping window nearly ends.
    let started: number | undefined;
    for (let t2 = at; t2 < at + 490_000; t2 += 10_000) {
      const requests = w.pass(a, t2);
      if (requests.length > 0) {
        started = t2;
        starts.push([t2 - at, (requests[0] as { flapping: boolean }).flapping]);
        break;
      }
    }
    if (started === undefined) break;
    at = started + 2000;
    w.beat('d1', [hb(`c${crash + 1}`, 0, 'STARTING')], at - 1000);
  }
  t.same(starts, [[0, false], [60_000, true], [120_000, true], [240_000, true]], 'at once, then 60 s, 120 s, 240 s; none after the fifth');
  t.same(w.ledger.flapping('app', 'sha-1', at + 1, S).map((f) => f.index), [0], 'reported FLAPPING while given up');
  t.same(w.pass(a, at + 200_000), [], 'given up: nothing, not even after droplet_lost');
  t.same(w.pass([app({ instances: 1, last_updated: 200 })], at + 201_000), [
    { droplet: 'app', op: 'START', last_updated: 200, version: 'sha-1', indices: [0], flapping: false },
  ], 'the app changed: its counts start over and the index is restarted');
});

t.test('the give-up ends after flapping_timeout without a crash', async (t) => {
  const settings = { ...S, flappingTimeoutMs: 100_000 };
  const w = world(settings);
  const a = [app({ instances: 1 })];
  w.pass(a, 0);
  for (let i = 0; i < 5; i++) w.crash(`c${i}`, 0, 1000 + i);
  t.same(w.pass(a, 100_000), []);
  t.same(w.pass(a, 101_005), [{ droplet: 'app', op: 'START', last_updated: 100, version: 'sha-1', indices: [0], flapping: false }]);
});

t.test('a new version is a fresh start for the counter', async (t) => {
  const w = world();
  w.pass([app({ instances: 1 })], 0);
  for (let i = 0; i < 5; i++) w.crash(`c${i}`, 0, 1000 + i);
  t.same(w.ledger.flapping('app', 'sha-2', 2000, S), []);
  const restarted = app({ instances: 1, run_count: 2, last_updated: 100 });
  t.same(w.pass([restarted], 40_000), [], 'the controller places a new version');
  t.same(w.pass([restarted], 70_001), [{ droplet: 'app', op: 'START', last_updated: 100, version: 'sha-2', indices: [0], flapping: false }],
    'not given up: missing after droplet_lost, restarted');
});

t.test('surplus indices, duplicates and old versions are stopped; a RUNNING current instance is kept', async (t) => {
  const w = world();
  w.beat('d1', [hb('dupe-old', 0, 'RUNNING'), hb('extra', 2), hb('old-1', 1, 'RUNNING', 'sha-0')], 0);
  w.beat('d2', [hb('dupe-starting', 0, 'STARTING'), hb('dupe-new', 0, 'RUNNING'), hb('new-1', 1, 'STARTING')], 1000);
  const requests = w.pass([app()], 2000);
  t.same(requests, [{ droplet: 'app', op: 'STOP', last_updated: 100, instances: ['dupe-new', 'dupe-starting', 'extra'] }],
    'the older RUNNING duplicate stays; the old version at index 1 stays while the new one only starts');
  w.beat('d2', [hb('dupe-starting', 0, 'STARTING'), hb('dupe-new', 0, 'STARTING'), hb('new-1', 1, 'RUNNING')], 3000);
  t.same(w.pass([app()], 4000), [{ droplet: 'app', op: 'STOP', last_updated: 100, instances: ['old-1'] }],
    'the old version goes once its successor runs; stops already asked for are not repeated');
  w.beat('d1', [hb('dupe-old', 0, 'RUNNING'), hb('extra', 2), hb('old-1', 1, 'RUNNING', 'sha-0')], 30_000);
  w.beat('d2', [hb('dupe-starting', 0, 'STARTING'), hb('dupe-new', 0, 'STARTING'), hb('new-1', 1, 'RUNNING')], 30_000);
  t.same(w.pass([app()], 34_001), [{ droplet: 'app', op: 'STOP', last_updated: 100, instances: ['dupe-new', 'dupe-starting', 'extra', 'old-1'] }],
    'still there after droplet_lost: asked again');
});

t.test('instances of stopped, unstaged and deleted apps are stopped', async (t) => {
  const w = world();
  w.beat('d1', [hb('s', 0, 'RUNNING', 'sha-1', 'stopped'), hb('g', 0, 'RUNNING', 'x-1', 'gone'), hb('leaving', 1, 'STOPPING', 'sha-1', 'stopped')], 0);
  const requests = w.pass([app({ id: 'stopped', state: 'STOPPED', last_updated: 300 })], 1000);
  t.same(requests, [
    { droplet: 'gone', op: 'STOP', last_updated: 0, instances: ['g'] },
    { droplet: 'stopped', op: 'STOP', last_updated: 300, instances: ['s'] },
  ], 'STOPPING instances are on their way already');
});

t.test('a started app whose instances all run needs nothing', async (t) => {
  const w = world();
  w.beat('d1', [hb('a', 0), hb('b', 1)], 0);
  for (const at of [0, 10_000, 60_000]) {
    w.beat('d1', [hb('a', 0), hb('b', 1)], at);
    t.same(w.pass([app()], at), []);
  }
});
