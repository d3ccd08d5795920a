// Runs one staging command (npm install, pip install, ...) for an app: its
// own process group, a given minimal environment (never the stager's), a
// time limit, and its output handed over line by line as it comes.

import { spawn } from 'node:child_process';

export interface RunOptions {
  cwd: string;
  /** The whole environment of the child; nothing of the stager's leaks in. */
  env: Record<string, string>;
  timeoutMs: number;
  /** Each line of stdout and stderr, without its line end. */
  onLine: (line: string) => void;
  /** Stops the command early (the job was cancelled, the stager is stopping). */
  signal?: AbortSignal;
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
// A line longer than this is passed on in pieces, so that one endless line
// (a progress bar without line ends) cannot grow the buffer without bound.
const MAX_LINE = 8192;

export function runCommand(argv: string[], opts: RunOptions): Promise<RunResult> {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('runCommand: empty argv');
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so a timeout ends the grandchildren too (npm runs scripts through sh).
      detached: true,
    });
    let timedOut = false;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
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
      opts.signal?.removeEventListener('abort', onAbort);
      for (const flush of splitters) flush();
      // Whatever the command left running in its group goes with it.
      killGroup('SIGKILL');
      if (killTimer) clearTimeout(killTimer);
      resolve(result);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      finish({ exitCode: null, signal: null, timedOut: false, spawnError: err.code === 'ENOENT' ? `${command}: not found` : err.message });
    });
    // 'close' waits for the pipes, so every line is in before the result.
    child.once('close', (exitCode, signal) => finish({ exitCode, signal, timedOut }));
  });
}

/** "exit code 1", "killed by SIGTERM", "timed out after 600 s" */
export function describeResult(result: RunResult, timeoutMs: number): string {
  if (result.spawnError) return result.spawnError;
  if (result.timedOut) return `timed out after ${Math.round(timeoutMs / 1000)} s`;
  if (result.exitCode !== null) return `exit code ${result.exitCode}`;
  return `killed by ${result.signal ?? 'a signal'}`;
}
