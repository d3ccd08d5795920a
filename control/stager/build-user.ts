// The unprivileged uid a staging job's build commands run as, when the
// stager runs as root: one uid of --build-uids per job, that no process on
// the host uses and no other job of this stager holds, given back at the
// job's end. Its gid is the same number; no /etc/passwd entry is needed.
// Commands drop to it with util-linux setpriv, as the DEA's apps do.

import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmod, lchown, lstat, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../bus/log';
import { formatRange, type IdRange } from '../../bus/uids';
import { StagingError } from './errors';

export interface BuildUser {
  uid: number;
  gid: number;
}

/** The stager cannot run builds as it was told to; it says why and exits 1. */
export class StagerSetupError extends Error {
  override name = 'StagerSetupError';
}

/** The prefix that runs a command as `user`: no supplementary groups, and no setuid binary can raise it again. */
export function asUser(user: BuildUser): string[] {
  return ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--no-new-privs', '--'];
}

/**
 * Pids of the live processes with `uid` as their real, effective, saved or
 * file-system uid; zombies are left out (they run nothing, and a PID 1 that
 * never reaps, as in some containers, keeps them forever).
 */
export async function pidsOf(uid: number): Promise<number[]> {
  const pids: number[] = [];
  await forEachProcess((pid, uids) => {
    if (uids.includes(uid)) pids.push(pid);
  });
  return pids;
}

/** Every uid some live process holds (real, effective, saved or file-system). */
export async function uidsInUse(): Promise<Set<number>> {
  const used = new Set<number>();
  await forEachProcess((_pid, uids) => {
    for (const uid of uids) used.add(uid);
  });
  return used;
}

async function forEachProcess(visit: (pid: number, uids: number[]) => void): Promise<void> {
  const names = await readdir('/proc');
  await Promise.all(
    names.filter((name) => /^\d+$/.test(name)).map(async (name) => {
      let status: string;
      try {
        status = await readFile(`/proc/${name}/status`, 'utf8');
      } catch {
        return; // gone meanwhile
      }
      const state = /^State:\s+(\S)/m.exec(status)?.[1];
      if (state === 'Z' || state === 'X') return;
      const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
      if (uids) visit(Number(name), uids.slice(1, 5).map(Number));
    }),
  );
}

/** Runs a short command as `user` in /; resolves with its exit code and stdout, rejects when it cannot start. */
function runQuietly(user: BuildUser, argv: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const [command, ...args] = [...asUser(user), ...argv];
    const child = spawn(command!, args, { cwd: '/', stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: '/usr/bin:/bin' } });
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout }));
  });
}

const KILL_TIMEOUT_MS = 10_000;

/**
 * Ends every process of `user`, including daemons that left the build's
 * process group and session. `kill -KILL -1` runs as that uid, so it can
 * reach no other process (a pid that is reused meanwhile is never hit);
 * repeated until /proc shows none, since a process may fork while it runs.
 */
export async function killEveryProcessOf(user: BuildUser): Promise<void> {
  const deadline = Date.now() + KILL_TIMEOUT_MS;
  for (;;) {
    const left = await pidsOf(user.uid);
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`processes of build uid ${user.uid} survive SIGKILL: ${left.slice(0, 10).join(', ')}`);
    // kill -1 skips the sending process itself; its status (nothing left to kill) does not matter.
    await runQuietly(user, ['/bin/sh', '-c', 'kill -KILL -1 2>/dev/null; exit 0']);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The uids of --build-uids, handed to jobs one each. */
export class BuildUids {
  private readonly held = new Set<number>();
  private readonly paths = new Map<string, Promise<{ path: string; left: string[] }>>();

  constructor(readonly range: IdRange) {}

  /** A uid that no live process uses and no job of this stager holds; from a random start, so stagers sharing a host rarely pick the same. */
  async acquire(): Promise<BuildUser> {
    const used = await uidsInUse();
    const size = this.range.last - this.range.first + 1;
    const start = randomInt(size);
    // Nothing awaits between the choice and `held`: two jobs of this stager never get the same.
    for (let i = 0; i < size; i++) {
      const uid = this.range.first + ((start + i) % size);
      if (!this.held.has(uid) && !used.has(uid)) {
        this.held.add(uid);
        return { uid, gid: uid };
      }
    }
    throw new StagingError(`no free build uid on this stager (all of ${formatRange(this.range)} are in use); push again later`);
  }

  release(user: BuildUser): void {
    this.held.delete(user.uid);
  }

  /**
   * The build commands' PATH: `path` without the directories a build uid
   * cannot search (tools installed under /root, say), which could only fail
   * it; `left` names those. Found once per `path`, as `user`.
   */
  reachablePath(path: string, user: BuildUser): Promise<{ path: string; left: string[] }> {
    let found = this.paths.get(path);
    if (!found) {
      const dirs = path.split(':').filter((dir) => dir !== '');
      found = runQuietly(user, ['/bin/sh', '-c', 'for d do if [ -d "$d" ] && [ -x "$d" ]; then printf "%s\\n" "$d"; fi; done', 'sh', ...dirs]).then(({ stdout }) => {
        const reachable = new Set(stdout.split('\n'));
        return { path: dirs.filter((dir) => reachable.has(dir)).join(':'), left: dirs.filter((dir) => !reachable.has(dir)) };
      });
      this.paths.set(path, found);
      found.catch(() => this.paths.delete(path));
    }
    return found;
  }
}

/** Gives a tree the stager made (never following a link) to `user`. */
export async function giveTree(path: string, user: BuildUser): Promise<void> {
  const stat = await lstat(path);
  await lchown(path, user.uid, user.gid);
  if (!stat.isDirectory()) return;
  for (const name of await readdir(path)) await giveTree(join(path, name), user);
}

/**
 * Gets the work directory ready for builds, once at start. As root: the
 * directory is 0711 (build uids pass through it, never list it), and a
 * build uid must reach a directory inside it through every parent; setpriv
 * must be there. Not root: builds run as the stager's own user, which the
 * warning says. Returns the build uids to use, or null for "as myself".
 */
export async function prepareBuilds(workDir: string, range: IdRange, logger: Logger): Promise<BuildUids | null> {
  await mkdir(workDir, { recursive: true, mode: 0o711 });
  const uid = process.getuid?.();
  if (uid !== 0) {
    logger.warn(
      `not running as root: build steps (npm install scripts, pip install) run as this stager's own user (uid ${uid ?? '?'}) ` +
        'and can read and change whatever it can; run the stager as root to give each job an unprivileged uid of --build-uids',
    );
    return null;
  }
  await chmod(workDir, 0o711);
  const uids = new BuildUids(range);
  const user = await uids.acquire();
  const probe = join(workDir, `.probe-${process.pid}`);
  try {
    await mkdir(probe, { mode: 0o700 });
    await lchown(probe, user.uid, user.gid);
    let code: number | null;
    try {
      ({ code } = await runQuietly(user, ['/bin/sh', '-c', 'cd "$1" && test -w .', 'sh', probe]));
    } catch (error) {
      throw new StagerSetupError(`setpriv (util-linux) is needed to run builds as unprivileged uids: ${(error as Error).message}`);
    }
    if (code !== 0) {
      throw new StagerSetupError(
        `build uids (${formatRange(range)}) cannot reach ${workDir}: every parent directory must be searchable by other users ` +
          '(chmod o+x on each), or choose --work-dir elsewhere',
      );
    }
  } finally {
    await rm(probe, { recursive: true, force: true });
    uids.release(user);
  }
  return uids;
}
