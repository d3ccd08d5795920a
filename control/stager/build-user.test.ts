// Build uids as root: handed out one per job, never one a process uses; a
// command run as one takes everything it started with it, daemons too.

import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureLog, eventually, type TeardownHost } from '../../test/harness';
import { asUser, BuildUids, killEveryProcessOf, pidsOf, prepareBuilds, StagerSetupError } from './build-user';
import { runCommand } from './run-command';

const skip = process.getuid?.() !== 0 && 'build uids need root (CI runs as root)';

// A small range of its own per run, so that tests running side by side rarely meet.
const base = 2_100_000 + 10 * Math.floor(Math.random() * 90);

function sleeperAs(t: TeardownHost, uid: number): ChildProcess {
  const child = spawn(asUser({ uid, gid: uid })[0]!, [...asUser({ uid, gid: uid }).slice(1), 'sleep', '60'], { stdio: 'ignore' });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

t.test('acquire: a uid of the range, never one held or used by a live process', { skip }, async (t) => {
  const uids = new BuildUids({ first: base, last: base + 2 });
  const busy = sleeperAs(t, base + 1);
  await eventually(async () => (await pidsOf(base + 1)).length > 0, 'the sleeper runs as its uid');
  const got = await Promise.all([uids.acquire(), uids.acquire()]);
  t.same(got.map((user) => user.uid).sort(), [base, base + 2], 'the two free ones, one each');
  t.same(got.map((user) => user.gid).sort(), [base, base + 2], 'gid = uid');
  await t.rejects(uids.acquire(), { name: 'StagingError', message: `no free build uid on this stager (all of ${base}-${base + 2} are in use)` });
  uids.release(got[0]!);
  t.same(await uids.acquire(), got[0], 'a released uid is handed out again');
  busy.kill('SIGKILL');
});

t.test('killEveryProcessOf ends daemons that left the group and session, and nothing of another uid', { skip }, async (t) => {
  const user = { uid: base + 3, gid: base + 3 };
  const bystander = sleeperAs(t, base + 4);
  // A daemon of its own session, as a build's `setsid` or `nohup &` leaves one.
  spawnSync(asUser(user)[0]!, [...asUser(user).slice(1), '/bin/sh', '-c', 'setsid sh -c "sleep 60 & sleep 60" >/dev/null 2>&1 < /dev/null &'], { stdio: 'ignore' });
  await eventually(async () => (await pidsOf(user.uid)).length >= 2, 'the daemons run');
  await killEveryProcessOf(user);
  t.same(await pidsOf(user.uid), [], 'none left');
  t.equal(bystander.exitCode, null, 'a process of another uid lives on');
  t.ok((await pidsOf(base + 4)).length > 0);
});

t.test('a command run as a build uid: its uid and groups, and a daemon holding its output does not hold the result', { skip }, async (t) => {
  const user = { uid: base + 5, gid: base + 5 };
  const lines: string[] = [];
  const started = Date.now();
  const result = await runCommand(['/bin/sh', '-c', 'id -u; id -g; id -G; setsid sh -c "sleep 60" &'], {
    cwd: '/', env: { PATH: '/usr/bin:/bin' }, timeoutMs: 30_000, runAs: user, onLine: (line) => lines.push(line),
  });
  t.equal(result.exitCode, 0);
  t.same(lines, [String(user.uid), String(user.gid), String(user.gid)], 'its own uid and gid, no supplementary groups');
  t.ok(Date.now() - started < 10_000, 'the daemon holding stdout did not keep the command running');
  t.same(await pidsOf(user.uid), [], 'the daemon is gone');
});

t.test('prepareBuilds: a work directory build uids cannot reach is refused at start', { skip }, async (t) => {
  const { logger } = captureLog('stager');
  const closed = mkdtempSync(join(tmpdir(), 'skiff-build-prepare-'));
  t.teardown(() => rmSync(closed, { recursive: true, force: true }));
  const range = { first: base + 6, last: base + 9 };
  await t.rejects(prepareBuilds(join(closed, 'work'), range, logger), new StagerSetupError(
    `build uids (${base + 6}-${base + 9}) cannot reach ${join(closed, 'work')}: every parent directory must be searchable by other users (chmod o+x on each), or choose --work-dir elsewhere`,
  ));
  chmodSync(closed, 0o711);
  mkdirSync(join(closed, 'work'), { recursive: true, mode: 0o700 });
  const uids = await prepareBuilds(join(closed, 'work'), range, logger);
  t.same(uids?.range, range);
});
