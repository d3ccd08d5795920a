// A child process the node keeps running: restarted with backoff when it
// dies, until it is stopped. Roles and the nats-server of a node each run
// as one, in a process group of their own (a terminal's Ctrl-C reaches only
// `skiff up`, which stops them in order) and under a parent-death signal
// (they end when `skiff up` is killed).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, fchmodSync, openSync } from 'node:fs';
import type { Logger } from '../../bus/log';

export class Supervised {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restarts = 0;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  /** Whether stop() had to SIGKILL it. */
  killed = false;

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly log: Logger,
    /** Where its output goes; the terminal by default. */
    private readonly logFile?: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  start(): void {
    this.stopping = false;
    this.startedAt = Date.now();
    const out = this.logFile === undefined ? 'inherit' : openPrivateLog(this.logFile);
    const [command, ...args] = [...parentDeathPrefix(), this.command, ...this.args];
    const child = spawn(command!, args, { stdio: ['ignore', out, out], env: this.env, detached: true });
    // The child has its own copy of the log's descriptor; ours would leak one per restart.
    if (typeof out === 'number') closeSync(out);
    this.child = child;
    child.on('error', (error) => this.log.error(`${this.name} could not start`, { error: error.message }));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (this.stopping) return;
      // A process that ran a while before dying starts over at the shortest delay.
      if (Date.now() - this.startedAt > 60_000) this.restarts = 0;
      const delay = Math.min(30_000, 500 * 2 ** this.restarts++);
      this.log.warn(`${this.name} exited; restarting`, { code, signal, in_ms: delay });
      this.restartTimer = setTimeout(() => this.start(), delay);
    });
  }

  /** SIGTERM, then SIGKILL at `killAt` (epoch ms): the platform's stop has one deadline for all. */
  async stop(killAt = Date.now() + 30_000): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      this.killed = true;
      this.log.warn(`${this.name} did not stop in time; killing it`);
      child.kill('SIGKILL');
    }, Math.max(0, killAt - Date.now()));
    await exited;
    clearTimeout(timer);
  }

  /** Stops and starts it again (a nats-server that must change what it listens on). */
  async restart(graceMs = 10_000): Promise<void> {
    await this.stop(Date.now() + graceMs);
    this.start();
  }

  /** SIGHUP: nats-server rereads its configuration (routes, users) without dropping clients. */
  reload(): void {
    this.child?.kill('SIGHUP');
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }
}

let parentDeath: string[] | undefined;

function parentDeathPrefix(): string[] {
  if (parentDeath === undefined) {
    const probe = spawnSync('setpriv', ['--pdeathsig', 'SIGTERM', '--', 'true'], { stdio: 'ignore' });
    parentDeath = probe.status === 0 ? ['setpriv', '--pdeathsig', 'SIGTERM', '--'] : [];
  }
  return parentDeath;
}

/** A log only the platform reads (0600, an older one too): nats-server's says more than apps should know. */
function openPrivateLog(path: string): number {
  const fd = openSync(path, 'a', 0o600);
  fchmodSync(fd, 0o600);
  return fd;
}
