// Stopping the platform the way service managers and CI do: one signal to
// one pid (`npm start`'s or `skiff up`'s), then nothing of what it started
// may be left, app instances included. App instances run as other uids in
// sessions of their own, and outlive their DEA as orphans if nothing ends
// them, so the tree is sampled while it runs and every process seen is
// checked by pid and start time afterwards.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type tap from 'tap';
import { skiff, spawnSkiff, tempHome } from './cli_harness';
import { eventually } from './harness';
import { descendants, platformDataDir, platformPorts, upArgs } from './platform_harness';

const ROOT = join(__dirname, '..');

export interface SeenProcess {
  pid: number;
  /** /proc starttime: a later process that got the same pid is not this one. */
  starttime: number;
  args: string;
}

function statFields(pid: number): { state: string; starttime: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0]!, starttime: Number(rest[19]) };
  } catch {
    return undefined;
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Whether this very process still runs (a zombie has ended). */
export function stillRunning(p: SeenProcess): boolean {
  const stat = statFields(p.pid);
  return stat !== undefined && stat.starttime === p.starttime && stat.state !== 'Z';
}

export interface Platform {
  /** The pid the test signals: npm's or skiff up's. */
  top: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  out: () => string;
  err: () => string;
  /** Every process seen below `top` so far. */
  seen: Map<number, SeenProcess>;
  home: string;
}

/**
 * The platform as a user starts it: `npm start` in the checkout (flags as
 * SKIFF_UP_* variables) or `skiff up` itself, on free ports and a temp data
 * dir. At teardown whatever is still running of it is killed by pid.
 */
export async function startPlatform(t: tap.Test, how: 'npm' | 'up'): Promise<Platform> {
  const dataDir = platformDataDir(t, `skiff-stop-${how}-`);
  const home = tempHome(t);
  const ports = await platformPorts();
  const args = upArgs(dataDir, ports);
  let top: ChildProcess;
  if (how === 'up') {
    top = spawnSkiff(args, home);
  } else {
    const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_HOME: home, npm_config_update_notifier: 'false' };
    delete env.NATS_URL;
    // `skiff up --router-port 1` -> SKIFF_UP_ROUTER_PORT=1
    for (let i = 1; i < args.length; i += 2) env[`SKIFF_UP_${args[i]!.slice(2).toUpperCase().replace(/-/g, '_')}`] = args[i + 1];
    // Its own process group, as in a terminal, so that a test can press Ctrl-C.
    top = spawn('npm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  }
  let out = '';
  let err = '';
  top.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  top.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => top.once('exit', (code, signal) => resolve({ code, signal })));
  const seen = new Map<number, SeenProcess>();
  const sample = (): void => {
    for (const pid of [top.pid!, ...descendants(top.pid!)]) {
      // A process caught between fork and exec shows its parent's command line, or none: read it again each time.
      const known = seen.get(pid);
      if (known !== undefined) {
        known.args = commandLine(pid) || known.args;
        continue;
      }
      const stat = statFields(pid);
      if (stat !== undefined && stat.state !== 'Z') seen.set(pid, { pid, starttime: stat.starttime, args: commandLine(pid) });
    }
  };
  const sampler = setInterval(sample, 200);
  void exited.then(() => clearInterval(sampler));
  t.teardown(() => {
    clearInterval(sampler);
    for (const p of seen.values()) if (stillRunning(p)) process.kill(p.pid, 'SIGKILL');
  });
  await eventually(() => /^api: /m.test(out) && /^router: /m.test(out), `${how === 'npm' ? 'npm start' : 'skiff up'} to print its api and router lines`, 90_000).catch((error: Error) => {
    throw new Error(`${error.message}\nstdout: ${out}\nstderr: ${err.slice(-3000)}`);
  });
  const pushed = await skiff(['push', join(ROOT, 'examples', 'hello-node'), '--name', 'tiny'], home);
  t.equal(pushed.code, 0, `the app runs (${pushed.stderr.trim().split('\n').slice(-2).join(' | ')})`);
  sample();
  return { top, exited, out: () => out, err: () => err, seen, home };
}

/** How the signalled process ended, or 'still running' after `withinMs`. */
export function exitWithin(platform: Platform, withinMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'still running'> {
  return Promise.race([platform.exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), withinMs))]);
}

/** Fails unless every process seen below the platform has ended within `withinMs`. */
export async function assertNothingLeft(t: tap.Test, platform: Platform, withinMs: number, what: string): Promise<void> {
  const seen = [...platform.seen.values()];
  t.ok(seen.some((p) => p.args.includes('nats-server')), 'nats-server was seen in the tree');
  t.ok(seen.some((p) => /skiff dea\b/.test(p.args)), 'the DEA was seen in the tree');
  t.ok(seen.some((p) => /\bnode server\.js$/.test(p.args)), 'the app instance was seen in the tree');
  const left = (): SeenProcess[] => seen.filter(stillRunning);
  const started = Date.now();
  await eventually(() => left().length === 0, `nothing left within ${withinMs} ms`, withinMs).catch(() => {});
  const remaining = left();
  t.same(remaining.map((p) => `${p.pid} ${p.args.slice(0, 100)}`), [], `${what}: nothing left running (waited ${Date.now() - started} ms)`);
}
