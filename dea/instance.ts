// One app instance: its directory, its process group, its state machine
// STARTING -> RUNNING -> STOPPING -> STOPPED, or -> CRASHED. The agent owns
// the bus; an instance tells it what happened through InstanceEvents.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, chown, lstat, mkdir, open, readdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { ExitReason, InstanceState, Limits } from '../bus/messages';
import { DROPLET_APP_DIR } from '../bus/platform';
import type { Logger } from '../bus/log';
import { buildInstanceEnv, type InstanceEnvInput } from './env';
import type { DropletCache } from './droplets';
import { unpackDroplet } from './droplets';
import type { RunAs } from './files-as-user';
import type { PortAllocator } from './ports';
import { cpuPercent, holdsSocket, instanceProcesses, listeningSocketInodes, readProcessTable, readStat, treeUsage, type ProcStat } from './proc';
import type { GroupWatchdog } from './watchdog';

export interface InstanceSpec {
  appId: string;
  name: string;
  instanceId: string;
  index: number;
  version: string;
  sha1: string;
  dropletObject: string;
  runtime: string;
  uris: string[];
  limits: Limits;
  env: string[];
  services: unknown[];
  startCommand?: string;
  /** The app's own uid from dea.<uuid>.start (gid the same); absent: the DEA's --user. Kept in the run record. */
  uid?: number;
  /** The app's session_affinity (dea.<uuid>.start, dea.update): its routes pin clients to instances. Kept in the run record. */
  sessionAffinity?: boolean;
}

/** What an instance needs from its DEA. */
export interface InstanceContext {
  host: string;
  startTimeoutMs: number;
  stopGraceMs: number;
  /** Who an instance's processes and files belong to: its app's uid (or --user) as root, undefined otherwise. */
  runAs: (spec: InstanceSpec) => RunAs | undefined;
  /** Launcher prefix, e.g. ['setpriv', '--pdeathsig', 'SIGKILL', '--reuid=U', ..., '--']. */
  launcher: (limits: Limits, runAs: RunAs | undefined) => string[];
  droplets: DropletCache;
  ports: PortAllocator;
  watchdog: GroupWatchdog;
  pageSize: number;
  ticksPerSecond: number;
  logger: Logger;
}

export interface InstanceEvents {
  running(instance: Instance): void;
  /** The instance ended; for CRASHED, exitStatus/exitDescription/crashTimestamp are set. */
  exited(instance: Instance, reason: ExitReason): void;
  /** State or process details changed; the agent persists them. */
  changed(instance: Instance): void;
}

export interface Usage {
  cpu: number;
  rssBytes: number;
  diskBytes: number;
}

export function newInstanceId(): string {
  return randomUUID().replace(/-/g, '');
}

export class Instance {
  state: InstanceState = 'STARTING';
  stateTimestamp = Math.floor(Date.now() / 1000);
  port: number | undefined;
  pid: number | undefined;
  /** /proc starttime of pid, to tell it from a later process with the same pid. */
  pidStartTime: number | undefined;
  startedAtMs = Date.now();
  exitStatus: number | undefined;
  exitDescription: string | undefined;
  crashTimestamp: number | undefined;
  /** The uid/gid its processes run as and its directory belongs to (undefined: the DEA's own, not root). */
  readonly runAs: RunAs | undefined;

  private child: ChildProcess | undefined;
  private launchEnv: Record<string, string> | undefined;
  private exitedPromise: Promise<void> | undefined;
  private stopReason: ExitReason | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private outOfMemory = false;
  private startFailure: string | undefined;
  private lastTicks: number | undefined;
  private lastSampleAt = 0;
  private usage: Usage = { cpu: 0, rssBytes: 0, diskBytes: 0 };
  private diskMeasuredAt = 0;
  private diskMeasuring: Promise<void> | undefined;

  constructor(
    readonly spec: InstanceSpec,
    readonly dir: string,
    private readonly ctx: InstanceContext,
    private readonly events: InstanceEvents,
  ) {
    this.runAs = ctx.runAs(spec);
  }

  get id(): string {
    return this.spec.instanceId;
  }

  /** Memory reserved on the DEA while the instance is live. */
  get reservesMemory(): boolean {
    return this.state === 'STARTING' || this.state === 'RUNNING' || this.state === 'STOPPING';
  }

  get uptimeSeconds(): number {
    return this.state === 'RUNNING' ? Math.round((Date.now() - this.startedAtMs) / 100) / 10 : 0;
  }

  currentUsage(): Usage {
    return { ...this.usage };
  }

  private setState(state: InstanceState): void {
    this.state = state;
    this.stateTimestamp = Math.floor(Date.now() / 1000);
    this.events.changed(this);
  }

  /** Prepares the directory, launches the process and waits for its port. Never throws: failures end as CRASHED. */
  async start(): Promise<void> {
    try {
      await this.prepareAndLaunch();
    } catch (err) {
      this.startFailure = `failed to start: ${(err as Error).message}`;
      this.ctx.logger.warn('instance failed to start', { app: this.spec.appId, instance: this.id, error: (err as Error).message });
      if (this.child) this.killGroup('SIGKILL');
      else this.finishWithoutProcess();
      return;
    }
    await this.waitUntilListening();
  }

  private async prepareAndLaunch(): Promise<void> {
    const { ctx, spec } = this;
    const owner = this.runAs;
    // The app's alone: no other app (another uid) may list or enter it, live or crashed.
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (owner) await chown(this.dir, owner.uid, owner.gid);
    await chmod(this.dir, 0o700);
    const tarball = await ctx.droplets.fetch(spec.sha1, spec.dropletObject);
    if (this.stopReason) throw new Error('stopped while starting');
    const info = await unpackDroplet(tarball, this.dir, owner);
    // A droplet with a `./` entry would have set the directory's mode to its own.
    await chmod(this.dir, 0o700);
    const command = info.start_command || spec.startCommand;
    if (!command) throw new Error('droplet has no start command');
    const tmpDir = join(this.dir, 'tmp');
    const logDir = join(this.dir, 'logs');
    for (const dir of [tmpDir, logDir]) {
      await mkdir(dir, { recursive: true, mode: 0o750 });
      if (owner) await chown(dir, owner.uid, owner.gid);
    }
    const stdout = await open(join(logDir, 'stdout.log'), 'a', 0o640);
    const stderr = await open(join(logDir, 'stderr.log'), 'a', 0o640);
    try {
      if (owner) {
        await stdout.chown(owner.uid, owner.gid);
        await stderr.chown(owner.uid, owner.gid);
      }
      const port = await ctx.ports.allocate();
      if (port === undefined) throw new Error('no free port in the DEA\'s range');
      this.port = port;
      if (this.stopReason) throw new Error('stopped while starting');
      this.startedAtMs = Date.now();
      const { env, skipped } = buildInstanceEnv(this.envInput(port));
      this.launchEnv = env;
      if (skipped.length > 0) ctx.logger.warn('app env entries skipped', { app: spec.appId, names: skipped.join(',') });
      const [command0, ...args] = [...this.launcher(), '/bin/sh', '-c', command];
      const child = spawn(command0!, args, {
        cwd: join(this.dir, DROPLET_APP_DIR),
        env,
        // Own session and process group: the whole tree can be signalled and measured.
        detached: true,
        stdio: ['ignore', stdout.fd, stderr.fd],
      });
      this.child = child;
      this.exitedPromise = new Promise((resolve) => {
        child.once('exit', (code, signal) => {
          this.onExit(code, signal);
          resolve();
        });
      });
      child.once('error', (err) => {
        // spawn failed (e.g. launcher missing): no 'exit' follows.
        this.startFailure = `failed to start: ${err.message}`;
        this.onExit(null, null);
      });
      if (child.pid !== undefined) {
        this.pid = child.pid;
        ctx.watchdog.watch(child.pid);
        this.pidStartTime = (await readStat(child.pid))?.starttime;
        this.events.changed(this);
      }
    } finally {
      await stdout.close();
      await stderr.close();
    }
  }

  private envInput(port: number): InstanceEnvInput {
    const { ctx, spec } = this;
    return {
      appId: spec.appId,
      name: spec.name,
      instanceId: spec.instanceId,
      index: spec.index,
      version: spec.version,
      uris: spec.uris,
      limits: spec.limits,
      host: ctx.host,
      port,
      startedAt: Math.floor(this.startedAtMs / 1000),
      instanceDir: this.dir,
      tmpDir: join(this.dir, 'tmp'),
      appEnv: spec.env,
      services: spec.services,
    };
  }

  /**
   * The app's environment, for `skiff ssh`: the one it was launched with, or
   * for a crashed instance restored after a DEA restart, the same rebuilt.
   */
  environment(): Record<string, string> {
    return { ...(this.launchEnv ?? buildInstanceEnv(this.envInput(this.port ?? 0)).env) };
  }

  /** The launcher prefix (setpriv as the app's own uid, limits) for processes run on the instance's behalf. */
  launcher(): string[] {
    return this.ctx.launcher(this.spec.limits, this.runAs);
  }

  private async waitUntilListening(): Promise<void> {
    const deadline = this.startedAtMs + this.ctx.startTimeoutMs;
    while (this.state === 'STARTING' && !this.stopReason) {
      if ((await canConnect(this.ctx.host, this.port!)) && (await this.ownsPort())) {
        if (this.state !== 'STARTING' || this.stopReason) return;
        // One sample before RUNNING: an instance already over its limit would be killed by the next
        // periodic sample anyway, after routers had sent it requests and `skiff push` had seen it run.
        const table = await readProcessTable().catch(() => undefined);
        if (table !== undefined) this.sample(table, Date.now());
        if (this.outOfMemory || this.state !== 'STARTING' || this.stopReason) return;
        this.setState('RUNNING');
        this.events.running(this);
        return;
      }
      if (Date.now() >= deadline) {
        this.startFailure = `failed to start: did not accept connections on its port within ${this.ctx.startTimeoutMs / 1000} s`;
        this.killGroup('SIGKILL');
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Whether what answers on the instance's port is the instance itself: a
   * port that another process took between the probe and the app's bind
   * (another DEA on the same range) must never get this app's route. When
   * /proc shows no listener for the port at all (another network
   * namespace), the connection is all there is to go by.
   */
  private async ownsPort(): Promise<boolean> {
    if (this.pid === undefined) return false;
    const inodes = await listeningSocketInodes(this.port!);
    if (inodes.size === 0) return true;
    const pids = instanceProcesses(await readProcessTable(), this.pid).map((p) => p.pid);
    return holdsSocket(pids, inodes);
  }

  /**
   * Stops the instance: the agent has unregistered its routes already. SIGTERM
   * to the group, SIGKILL after the grace period. Resolves once it is gone.
   */
  async stop(reason: ExitReason): Promise<void> {
    if (this.state === 'CRASHED') {
      this.setState('DELETED');
      return;
    }
    if (this.state === 'STOPPED' || this.state === 'DELETED') return;
    if (this.stopReason) return this.exitedPromise;
    this.stopReason = reason;
    this.setState('STOPPING');
    if (!this.child || !this.exitedPromise) {
      // Still fetching or unpacking: start() notices stopReason and ends without a process.
      return;
    }
    this.killGroup('SIGTERM');
    this.killTimer = setTimeout(() => this.killGroup('SIGKILL'), this.ctx.stopGraceMs);
    await this.exitedPromise;
  }

  /** Called by the agent every sample interval with a fresh process table. */
  sample(table: ProcStat[], nowMs: number): void {
    if (this.pid === undefined || !this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    const usage = treeUsage(instanceProcesses(table, this.pid), this.ctx.pageSize);
    const cpu = this.lastTicks === undefined ? 0 : cpuPercent(this.lastTicks, usage.cpuTicks, nowMs - this.lastSampleAt, this.ctx.ticksPerSecond);
    this.lastTicks = usage.cpuTicks;
    this.lastSampleAt = nowMs;
    this.usage.cpu = cpu;
    this.usage.rssBytes = usage.rssBytes;
    const limitBytes = this.spec.limits.mem * 1024 * 1024;
    if (limitBytes > 0 && usage.rssBytes > limitBytes && !this.outOfMemory && this.state !== 'STOPPING') {
      this.outOfMemory = true;
      this.ctx.logger.warn('instance over its memory limit, killing it', {
        app: this.spec.appId, instance: this.id, rss_mb: Math.round(usage.rssBytes / 1048576), limit_mb: this.spec.limits.mem,
      });
      this.killGroup('SIGKILL');
      // Members that left the group (setsid) are still part of the instance.
      for (const pid of usage.pids) signal(pid, 'SIGKILL');
    }
  }

  /** Bytes under the instance directory, measured at most every 10 s. */
  async diskUsage(): Promise<number> {
    if (Date.now() - this.diskMeasuredAt > 10_000 && !this.diskMeasuring) {
      this.diskMeasuring = directorySize(this.dir).then(
        (bytes) => {
          this.usage.diskBytes = bytes;
          this.diskMeasuredAt = Date.now();
        },
        () => {},
      ).finally(() => (this.diskMeasuring = undefined));
    }
    if (this.diskMeasuring) await this.diskMeasuring;
    return this.usage.diskBytes;
  }

  private killGroup(sig: NodeJS.Signals): void {
    if (this.pid !== undefined) signal(-this.pid, sig);
  }

  private onExit(code: number | null, sig: NodeJS.Signals | null): void {
    if (this.state === 'STOPPED' || this.state === 'CRASHED' || this.state === 'DELETED') return;
    clearTimeout(this.killTimer);
    // Whatever the first process left behind goes with it.
    this.killGroup('SIGKILL');
    if (this.pid !== undefined) this.ctx.watchdog.forget(this.pid);
    if (this.port !== undefined) this.ctx.ports.release(this.port);
    this.usage.cpu = 0;
    this.usage.rssBytes = 0;
    if (this.stopReason) {
      this.setState('STOPPED');
      this.events.exited(this, this.stopReason);
      return;
    }
    this.exitStatus = code ?? undefined;
    this.exitDescription = this.outOfMemory
      ? 'out of memory'
      : (this.startFailure ?? (sig ? `app instance killed by ${sig}` : 'app instance exited'));
    this.crashTimestamp = Math.floor(Date.now() / 1000);
    this.setState('CRASHED');
    this.events.exited(this, 'CRASHED');
  }

  /** The start ended before any process ran (stopped early, or droplet trouble). */
  private finishWithoutProcess(): void {
    if (this.port !== undefined) this.ctx.ports.release(this.port);
    if (this.stopReason) {
      this.setState('STOPPED');
      this.events.exited(this, this.stopReason);
      return;
    }
    this.exitDescription = this.startFailure;
    this.crashTimestamp = Math.floor(Date.now() / 1000);
    this.setState('CRASHED');
    this.events.exited(this, 'CRASHED');
  }

  /** Restores a crashed instance recorded by a previous run, for find.droplet and files. */
  static restoreCrashed(spec: InstanceSpec, dir: string, ctx: InstanceContext, events: InstanceEvents, record: CrashRecord): Instance {
    const instance = new Instance(spec, dir, ctx, events);
    instance.state = 'CRASHED';
    instance.stateTimestamp = record.stateTimestamp;
    instance.port = record.port;
    instance.exitStatus = record.exitStatus;
    instance.exitDescription = record.exitDescription;
    instance.crashTimestamp = record.crashTimestamp;
    return instance;
  }

  async removeDirectory(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export interface CrashRecord {
  stateTimestamp: number;
  port?: number;
  exitStatus?: number;
  exitDescription?: string;
  crashTimestamp?: number;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Bytes of the files under dir (links not followed). */
export async function directorySize(dir: string): Promise<number> {
  let total = 0;
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop()!;
    const entries = await readdir(current, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else {
        const info = await lstat(path).catch(() => undefined);
        if (info) total += info.size;
      }
    }
  }
  return total;
}
