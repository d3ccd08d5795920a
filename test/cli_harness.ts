// Runs the compiled `./bin/skiff` as a child process with its own SKIFF_HOME,
// bounded in time and ended by pid.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TeardownHost } from './harness';

// Tests run from the TypeScript sources (tap's loader); the CLI runs compiled from dist/.
export const SKIFF_BIN = join(__dirname, '..', 'bin', 'skiff');

export interface SkiffRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function tempHome(t: TeardownHost): string {
  const home = mkdtempSync(join(tmpdir(), 'skiff-cli-home-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  return home;
}

/** Spawns `skiff ...args`; the caller ends it (or waits with finish()). */
export function spawnSkiff(args: string[], home: string, extraEnv: NodeJS.ProcessEnv = {}, cwd?: string): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_HOME: home, ...extraEnv };
  delete env.NATS_URL;
  // tap's processinfo adds its --import to NODE_OPTIONS of every spawn, whatever env is given; through
  // skiff up it reached app instances, whose exit hook then failed as the app's uid and wrote a stack
  // into the app's stderr.log. `env -u` drops it (and execs: the pid stays skiff's).
  return spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, SKIFF_BIN, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function finish(child: ChildProcess, timeoutMs = 20_000): Promise<SkiffRun> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function skiff(args: string[], home: string, extraEnv: NodeJS.ProcessEnv = {}, cwd?: string): Promise<SkiffRun> {
  return finish(spawnSkiff(args, home, extraEnv, cwd));
}

/**
 * Runs `skiff ...args` on a pseudo-terminal (util-linux `script`), answering
 * each prompt as it appears. Undefined when `script` is not installed.
 */
export async function skiffOnTerminal(args: string[], home: string, answers: Array<[prompt: string, answer: string]>): Promise<SkiffRun | undefined> {
  if (!['/usr/bin/script', '/bin/script'].some((path) => existsSync(path))) return undefined;
  const command = [process.execPath, SKIFF_BIN, ...args].map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...process.env, SKIFF_HOME: home }, stdio: ['pipe', 'pipe', 'pipe'] });
  const result = finish(child);
  let seen = '';
  const pending = [...answers];
  child.stdout!.on('data', (chunk: string) => {
    seen += chunk;
    while (pending.length > 0 && seen.includes(pending[0]![0])) {
      seen = seen.slice(seen.indexOf(pending[0]![0]) + pending[0]![0].length);
      child.stdin!.write(pending.shift()![1] + '\r');
    }
  });
  return result;
}
