// `npm start` as service managers and CI stop it: one SIGTERM or SIGINT to
// npm's pid (npm forwards both to its script, which must therefore be
// `skiff up` itself, not a shell around it), and npm killed outright
// (`skiff up` notices that its parent died). Nothing it started may be left,
// app instances included.

import t from 'tap';
import { assertNothingLeft, exitWithin, startPlatform } from '../stop_harness';

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal} to npm start stops everything it started`, async (t) => {
    const platform = await startPlatform(t, 'npm');
    platform.top.kill(signal);
    await assertNothingLeft(t, platform, 15_000, `${signal} to npm start`);
    t.same(await exitWithin(platform, 5000), { code: 0, signal: null }, 'npm exits 0, as skiff up did');
    t.match(platform.err(), `up: stopping the platform reason=${signal}`);
  });
}

t.test('Ctrl-C on a terminal (SIGINT to the whole process group) stops everything', async (t) => {
  const platform = await startPlatform(t, 'npm');
  // skiff up gets this SIGINT twice: from the terminal, and forwarded by npm.
  process.kill(-platform.top.pid!, 'SIGINT');
  await assertNothingLeft(t, platform, 15_000, 'Ctrl-C');
  t.same(await exitWithin(platform, 5000), { code: 0, signal: null }, 'npm exits 0, as skiff up did');
  t.match(platform.err(), 'up: stopping the platform reason=SIGINT');
  t.notMatch(platform.err(), /did not stop in time/);
});

t.test('SIGKILL to npm start: skiff up sees its parent die and stops everything', async (t) => {
  const platform = await startPlatform(t, 'npm');
  platform.top.kill('SIGKILL');
  await assertNothingLeft(t, platform, 15_000, 'SIGKILL to npm start');
  t.match(platform.err(), 'up: stopping the platform reason="parent exited"');
});
