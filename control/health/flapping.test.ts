import t from 'tap';
import { backoffMs, hasGivenUp, isExpired, isFlapping, jitterMs, recordCrash, type CrashCount } from './flapping';
import { DEFAULT_SETTINGS } from './settings';

const noJitter = () => 0;

t.test('the delay doubles from min_restart_delay up to max_restart_delay (CF v1 defaults)', async (t) => {
  const s = DEFAULT_SETTINGS;
  t.same([2, 3, 4, 5, 6, 7, 10].map((n) => backoffMs(n, s) / 1000), [60, 120, 240, 480, 480, 480, 480]);
  t.equal(backoffMs(40, s), 480_000, 'no 32-bit shift overflow for long counts');
});

t.test('jitter is at most a few seconds, and at most a tenth of the delay', async (t) => {
  t.equal(jitterMs(60_000, () => 0.999999) <= 5000, true);
  t.ok(jitterMs(60_000, () => 0.999999) > 4900);
  t.equal(jitterMs(1000, () => 1), 100);
  t.equal(jitterMs(1000, () => 0), 0);
});

t.test('the crash counter: restart at once, then back off, then give up from the fifth crash', async (t) => {
  const s = DEFAULT_SETTINGS;
  let count: CrashCount | undefined;
  const seen: Array<{ crashes: number; flapping: boolean; delay: number; gaveUp: boolean }> = [];
  let now = 1_000_000;
  for (let i = 0; i < 6; i++) {
    count = recordCrash(count, now, s, noJitter);
    seen.push({ crashes: count.crashes, flapping: isFlapping(count), delay: count.restartAt - now, gaveUp: hasGivenUp(count) });
    now += 10_000;
  }
  t.same(seen, [
    { crashes: 1, flapping: false, delay: 0, gaveUp: false },
    { crashes: 2, flapping: true, delay: 60_000, gaveUp: false },
    { crashes: 3, flapping: true, delay: 120_000, gaveUp: false },
    { crashes: 4, flapping: true, delay: 240_000, gaveUp: false },
    { crashes: 5, flapping: true, delay: Infinity, gaveUp: true },
    { crashes: 6, flapping: true, delay: Infinity, gaveUp: true },
  ]);
  t.equal(count!.flappingSince, 1_010_000, 'flapping since the second crash');
});

t.test('jitter is added to the backoff', async (t) => {
  const count = recordCrash(recordCrash(undefined, 0, DEFAULT_SETTINGS), 1000, DEFAULT_SETTINGS, () => 0.5);
  t.equal(count.restartAt, 1000 + 60_000 + 2500);
});

t.test('the counter resets after flapping_timeout without a crash', async (t) => {
  const s = { ...DEFAULT_SETTINGS, flappingTimeoutMs: 500_000 };
  let count: CrashCount | undefined;
  for (let i = 0; i < 5; i++) count = recordCrash(count, i * 1000, s, noJitter);
  t.ok(hasGivenUp(count));
  t.notOk(isExpired(count!, 4000 + 500_000, s), 'still inside the window at exactly flapping_timeout');
  t.ok(isExpired(count!, 4000 + 500_001, s));
  const fresh = recordCrash(count, 4000 + 500_001, s, noJitter);
  t.same({ crashes: fresh.crashes, flapping: isFlapping(fresh), gaveUp: hasGivenUp(fresh) }, { crashes: 1, flapping: false, gaveUp: false });
});

t.test('flapping_death and giveup_crash_number move the thresholds', async (t) => {
  const s = { ...DEFAULT_SETTINGS, flappingDeath: 2, giveupCrashNumber: 2, minRestartDelayMs: 1000 };
  const one = recordCrash(undefined, 0, s, noJitter);
  const two = recordCrash(one, 1, s, noJitter);
  const three = recordCrash(two, 2, s, noJitter);
  t.same([isFlapping(one), isFlapping(two), isFlapping(three)], [false, false, true]);
  t.same([hasGivenUp(two), hasGivenUp(three)], [false, true]);
  const zero = { ...DEFAULT_SETTINGS, flappingDeath: 0, minRestartDelayMs: 1000 };
  const first = recordCrash(undefined, 0, zero, noJitter);
  t.ok(isFlapping(first), 'flapping_death 0: the first crash already backs off');
  t.equal(first.restartAt, 1000, 'by min_restart_delay (no negative shift)');
});
