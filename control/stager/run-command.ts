// Runs one staging command (npm install, pip install, ...) for an app: its
// own process group, a given minimal environment (never the stager's), a
// time limit, and its output handed over line by line as it comes. With
// `runAs`, it runs as that unprivileged build uid, and when it ends every
// process of that uid ends with it.

import { spawn } from 'node:child_process';
import { asUser, killEveryProcessOf, type BuildUser } from './build-user';

export interface RunOptions {
  cwd: string;
  /** The whole environment of the child; nothing of the stager's leaks in. */
  env: Record<string, string>;
  timeoutMs: number;
  /** Each line of stdout and stderr, without its line end. */
  onLine: (line: string) => void;
  /** Stops the command early (the job was cancelled, the stager is stopping). */
  signal?: AbortSignal;
  /** Runs the command as this uid (through setpriv); the stager is root. */
  runAs?: BuildUser;
}

export interface RunResult {
  /** null when the command was killed by a signal. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The command could not be started at all (ENOENT: not installed). */
  spawnError?: string;
}

const KILL_GRACE_MS = 2000;
// Once the command has exited, how long its pipes may stay open: a process
// that left its group and session (a daemon) can hold them forever.
const CLOSE_GRACE_MS = 2000;
// A line longer than this is passed on in pieces, so that one endless line
// (a progress bar without line ends) cannot grow the buffer without bound.
const MAX_LINE = 8192;

export function runCommand(argv: string[], opts: RunOptions): Promise<RunResult> {
  if (argv.length === 0) throw new Error('runCommand: empty argv');
  const [command, ...args] = opts.runAs ? [...asUser(opts.runAs), ...argv] : argv;
  return new Promise((resolve) => {
    const child = spawn(command!, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so a timeout ends the grandchildren too (npm runs scripts through sh).
      detached: true,
    });
    let timedOut = false;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    let closeTimer: NodeJS.Timeout | undefined;
    const killGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // the group is gone already
      }
    };
    const stop = () => {
      killGroup('SIGTERM');
      killTimer ??= setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutMs);
    const onAbort = () => stop();
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const splitters = [child.stdout!, child.stderr!].map((stream) => {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        pending += chunk;
        const parts = pending.split(/\r\n|\n|\r/);
        pending = parts.pop()!;
        while (pending.length > MAX_LINE) {
          parts.push(pending.slice(0, MAX_LINE));
          pending = pending.slice(MAX_LINE);
        }
        for (const line of parts) opts.onLine(line);
      });
      return () => {
        if (pending !== '') opts.onLine(pending);
        pending = '';
      };
    });

    const finish = (result: RunResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(closeTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      for (const flush of splitters) flush();
      killGroup('SIGKILL');
      if (killTimer) clearTimeout(killTimer);
      resolve(result);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      finish({ exitCode: null, signal: null, timedOut: false, spawnError: err.code === 'ENOENT' ? `${command}: not found` : err.message });
    });
    let cleanup: Promise<void> = Promise.resolve();
    child.once('exit', (exitCode, signal) => {
      // Whatever the command left running in its group goes with it, and as
      // a build uid every other process of that uid too: nothing of the
      // build outlives its command (nor holds the pipes open, nor runs on
      // into the next command).
      killGroup('SIGKILL');
      if (opts.runAs) cleanup = killEveryProcessOf(opts.runAs).catch(() => {});
      void cleanup.then(() => {
        if (settled) return;
        closeTimer = setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          finish({ exitCode, signal, timedOut });
        }, CLOSE_GRACE_MS);
      });
    });
    // 'close' waits for the pipes, so every line is in before the result.
    child.once('close', (exitCode, signal) => void cleanup.then(() => finish({ exitCode, signal, timedOut })));
  });
}

/** "exit code 1", "killed by SIGTERM", "timed out after 600 s" */
export function describeResult(result: RunResult, timeoutMs: number): string {
  if (result.spawnError) return result.spawnError;
  if (result.timedOut) return `timed out after ${Math.round(timeoutMs / 1000)} s`;
  if (result.exitCode !== null) return `exit code ${result.exitCode}`;
  return `killed by ${result.signal ?? 'a signal'}`;
}
