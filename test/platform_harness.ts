// The whole platform in a test: `skiff up` (or another long-running `skiff`
// process) on free ports and a temp data dir, its output kept, and its whole
// process tree ended by pid at teardown.

import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectBus, type Bus } from '../bus/connection';
import { silentLogger } from '../bus/log';
import type { NatsRole } from '../bus/permissions';
import { finish, spawnSkiff } from './cli_harness';
import { freePort, isAlive, type TeardownHost } from './harness';

/** Every process below `pid`, from /proc. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry), ...descendants(Number(entry)));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** A temp data dir, removed at teardown; as root the DEA runs apps as an unprivileged user, who must reach it. */
export function platformDataDir(t: TeardownHost, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface PlatformPorts {
  router: number;
  status: number;
  api: number;
  nats: number;
}

export async function platformPorts(): Promise<PlatformPorts> {
  return { router: await freePort(), status: await freePort(), api: await freePort(), nats: await freePort() };
}

/**
 * `skiff up` on these ports, its apps on a block of 100 ports of its own in
 * 61000-61999 (test files run side by side: two platforms handing out the
 * same app ports would crash each other's apps).
 */
export function upArgs(dataDir: string, ports: PlatformPorts): string[] {
  const block = 61000 + Math.floor(Math.random() * 10) * 100;
  return [
    'up', '--data-dir', dataDir,
    '--router-port', String(ports.router), '--router-status-port', String(ports.status),
    '--api-port', String(ports.api), '--nats-port', String(ports.nats),
    '--app-ports', `${block}-${block + 99}`,
  ];
}

export interface SkiffTree {
  pid: number;
  /** What it printed on stdout, and on stderr (the roles' logs). */
  out: () => string;
  err: () => string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop: (graceMs?: number) => Promise<number | null>;
  kill: (signal: NodeJS.Signals) => void;
  /** Every process seen below it while it ran (roles, app instances). */
  seen: Set<number>;
}

/** A long-running `skiff` process; at teardown it is stopped and anything of its tree still alive is killed. */
export function startSkiffTree(t: TeardownHost, args: string[], home: string, limitMs: number, extraEnv: NodeJS.ProcessEnv = {}, opts: { withoutTapLoader?: boolean } = {}): SkiffTree {
  const child = spawnSkiff(args, home, extraEnv, undefined, opts);
  const done = finish(child, limitMs);
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: string) => (out += chunk));
  child.stderr!.on('data', (chunk: string) => (err += chunk));
  const seen = new Set<number>();
  const sampler = setInterval(() => {
    for (const pid of descendants(child.pid!)) seen.add(pid);
  }, 500);
  const stop = async (graceMs = 45_000): Promise<number | null> => {
    clearInterval(sampler);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const result = await done;
    clearTimeout(killer);
    return result.code;
  };
  t.teardown(async () => {
    await stop();
    for (const pid of seen) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  return { pid: child.pid!, out: () => out, err: () => err, stop, kill: (signal) => child.kill(signal), seen };
}

/** The NATS credentials `skiff up` wrote for a role (or the operator) of the platform in dataDir. */
export function platformCredentials(dataDir: string, user: NatsRole | 'operator'): string {
  return join(dataDir, 'nats', `${user}.json`);
}

/** A bus client of the platform in dataDir, as its operator (NATS is never anonymous under `skiff up`). */
export async function platformBus(t: TeardownHost, dataDir: string, name: string): Promise<Bus> {
  const file = platformCredentials(dataDir, 'operator');
  const { servers, user, pass } = JSON.parse(readFileSync(file, 'utf8')) as { servers: string[]; user: string; pass: string };
  const bus = await connectBus({ servers, name, logger: silentLogger, auth: { user, pass, origin: file } });
  t.teardown(() => bus.close());
  return bus;
}
