// `skiff up` stops the whole platform, every app instance included, on one
// SIGTERM or SIGINT to its pid; SIGKILL of its pid leaves nothing either
// (the roles and nats-server run under a parent-death signal, the DEA takes
// its instances with it).

import t from 'tap';
import { assertNothingLeft, exitWithin, startPlatform } from '../stop_harness';

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal} to skiff up stops everything it started`, async (t) => {
    const platform = await startPlatform(t, 'up');
    platform.top.kill(signal);
    await assertNothingLeft(t, platform, 15_000, `${signal} to skiff up`);
    t.same(await exitWithin(platform, 5000), { code: 0, signal: null }, 'skiff up exits 0');
    t.match(platform.err(), `up: stopping the platform reason=${signal}`);
  });
}

t.test('SIGKILL to skiff up leaves nothing after a short while', async (t) => {
  const platform = await startPlatform(t, 'up');
  platform.top.kill('SIGKILL');
  // The roles stop on their own, NATS gone at the same moment: the
  // controller and the health manager give up on it after about 10 s.
  await assertNothingLeft(t, platform, 25_000, 'SIGKILL to skiff up');
});
