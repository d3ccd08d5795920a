// The login lockout against a real JetStream nats-server, with a clock of
// the test's own so that windows and locks pass without waiting.

import t from 'tap';
import { connectBus, type Bus } from '../../bus/connection';
import { captureLog, startNats, type TeardownHost } from '../../test/harness';
import { LOCKOUT_DEFAULTS, LoginLockout } from './lockout';
import { Buckets, emailKey } from './store';

async function openBus(t: TeardownHost, url: string): Promise<Bus> {
  const bus = await connectBus({ servers: url, name: 'lockout-test', logger: captureLog('bus', 'warn').logger });
  t.teardown(() => bus.close());
  return bus;
}

t.test("the defaults are UAA's: 5 failures within 300 s lock for 300 s", async (t) => {
  t.same(LOCKOUT_DEFAULTS, { maxFailures: 5, windowSeconds: 300, lockSeconds: 300 });
});

t.test('the login lockout, against a JetStream nats-server', async (t) => {
  const nats = await startNats(t);
  const bus = await openBus(t, nats.url);
  let now = 1_000_000_000_000;
  const clock = () => now;
  const limits = { maxFailures: 3, windowSeconds: 60, lockSeconds: 30 };
  const lockout = await LoginLockout.open(bus, limits, clock);

  t.test('the last allowed failure locks; the lock counts down and ends', async (t) => {
    const email = 'ann@example.com';
    t.same(await lockout.check(email), { locked: false });
    t.same(await lockout.failed(email), { locked: false });
    now += 1000;
    t.same(await lockout.failed(email), { locked: false });
    now += 1000;
    t.same(await lockout.failed(email), { locked: true, retryAfterSeconds: 30 }, 'the third failure locks');
    now += 10_500;
    t.same(await lockout.check(email), { locked: true, retryAfterSeconds: 20 }, 'seconds left, rounded up');
    t.same(await lockout.failed(email), { locked: true, retryAfterSeconds: 20 }, 'a failure while locked does not lengthen the lock');
    now += 19_500;
    t.same(await lockout.check(email), { locked: false }, 'over after lockSeconds');
    t.same(await lockout.failed(email), { locked: false }, 'and counting starts afresh');
  });

  t.test('only failures within the window count', async (t) => {
    const email = 'bob@example.com';
    await lockout.failed(email);
    now += 40_000;
    await lockout.failed(email);
    now += 21_000; // the first is now 61 s old
    t.same(await lockout.failed(email), { locked: false });
    t.same(await lockout.failed(email), { locked: true, retryAfterSeconds: 30 });
  });

  t.test('cleared() forgets the failures and ends a lock', async (t) => {
    const email = 'cat@example.com';
    await lockout.failed(email);
    await lockout.failed(email);
    await lockout.cleared(email);
    t.same(await lockout.failed(email), { locked: false }, 'two cleared failures do not count');
    await lockout.failed(email);
    t.same(await lockout.failed(email), { locked: true, retryAfterSeconds: 30 });
    await lockout.cleared(email);
    t.same(await lockout.check(email), { locked: false });
    await lockout.cleared('nobody@example.com');
  });

  t.test('two lockouts on separate connections count into one: failures at the same moment are all counted', async (t) => {
    const other = await LoginLockout.open(await openBus(t, nats.url), limits, clock);
    const email = 'dan@example.com';
    const states = await Promise.all([lockout.failed(email), other.failed(email), lockout.failed(email), other.failed(email)]);
    t.equal(states.filter((s) => s.locked).length, 2, 'the third locked, the fourth found it locked');
    t.same(await other.check(email), { locked: true, retryAfterSeconds: 30 });
    t.same(await lockout.check(email), { locked: true, retryAfterSeconds: 30 });
  });

  t.test('entries are per email (emailKey) in skiff_logins, which expires them', async (t) => {
    const kv = await bus.nats.jetstream().views.kv(Buckets.logins);
    t.ok(await kv.get(emailKey('dan@example.com')));
    const status = await kv.status();
    t.equal(status.ttl, (limits.windowSeconds + limits.lockSeconds) * 1000);
  });
});
