// A backend process of the services node (a redis-server, the postgres
// cluster): its child, restarted with backoff whenever it dies, until the
// node stops it. It runs
// - as the backend's own unprivileged user when the node is root;
// - under a parent-death signal, so that it ends with the node even when
//   the node is killed: a restarted node starts it again from its data, and
//   nothing is left running that no node watches;
// - in a process group of its own (a terminal's Ctrl-C reaches only the
//   platform, which stops it in order);
// - with an environment built from nothing (the node's holds its NATS
//   credentials), its output in a log only root reads.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, fchmodSync, openSync } from 'node:fs';
import type { Logger } from '../bus/log';

export interface BackendProcessOptions {
  /** Run as this uid and gid (no supplementary groups); the node's own when absent. */
  uid?: number;
  gid?: number;
  /** What ends it gracefully (and what the kernel sends when the node dies): SIGTERM for redis, SIGINT (fast shutdown) for postgres. */
  stopSignal: NodeJS.Signals;
  /** Its stdout and stderr, appended; created 0600. */
  logFile: string;
  cwd: string;
  /** Called after each restart that follows a death (not the first start). */
  onRestart?: () => void;
}

const BACKEND_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };

export class BackendProcess {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restarts = 0;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  /** How the last run ended, for status: "exit 1", "SIGKILL". */
  lastExit: string | undefined;
  /** Deaths since it was started by the node (not by a restart). */
  deaths = 0;

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly options: BackendProcessOptions,
    private readonly log: Logger,
  ) {}

  /** Starts it now (a restart already waiting is dropped: one process at a time). */
  start(): void {
    this.stopping = false;
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    if (!this.running) this.run();
  }

  private run(): void {
    this.startedAt = Date.now();
    const out = openPrivateLog(this.options.logFile);
    const { uid, gid } = this.options;
    const prefix = setprivPrefix(this.options.stopSignal, uid, gid);
    // Without setpriv, spawn's own uid/gid (libuv drops supplementary groups as root); no parent-death signal then.
    const ids = prefix.length === 0 && uid !== undefined ? { uid, gid } : {};
    const [command, ...args] = [...prefix, this.command, ...this.args];
    let child: ChildProcess;
    try {
      child = spawn(command!, args, { stdio: ['ignore', out, out], env: BACKEND_ENV, cwd: this.options.cwd, detached: true, ...ids });
    } finally {
      closeSync(out);
    }
    this.child = child;
    child.on('error', (error) => this.log.error(`${this.name} could not start`, { error: error.message }));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      this.lastExit = signal !== null ? signal : `exit ${code}`;
      if (this.stopping) return;
      this.deaths++;
      // One that ran a while before dying starts over at the shortest delay.
      if (Date.now() - this.startedAt > 60_000) this.restarts = 0;
      const delay = Math.min(30_000, 500 * 2 ** this.restarts++);
      this.log.warn(`${this.name} exited; restarting`, { code: code ?? undefined, signal: signal ?? undefined, in_ms: delay });
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (this.stopping) return;
        this.run();
        this.options.onRestart?.();
      }, delay);
    });
  }

  /** The stop signal, then SIGKILL after `graceMs`. Resolves once it has exited. */
  async stop(graceMs = 15_000): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(this.options.stopSignal);
    const timer = setTimeout(() => {
      this.log.warn(`${this.name} did not stop in time; killing it`);
      child.kill('SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(timer);
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  /** Milliseconds since the current run started. */
  get uptimeMs(): number {
    return this.running ? Date.now() - this.startedAt : 0;
  }
}

let setprivWorks: boolean | undefined;

/** `setpriv [ids] --pdeathsig SIGNAL --`, or [] where setpriv is missing. */
export function setprivPrefix(signal: NodeJS.Signals, uid: number | undefined, gid: number | undefined): string[] {
  if (setprivWorks === undefined) setprivWorks = spawnSync('setpriv', ['--pdeathsig', 'SIGTERM', '--', 'true'], { stdio: 'ignore' }).status === 0;
  if (!setprivWorks) return [];
  // setpriv sets the parent-death signal after changing ids (a change of ids would clear it).
  const ids = uid === undefined ? [] : ['--reuid', String(uid), '--regid', String(gid ?? uid), '--clear-groups'];
  return ['setpriv', ...ids, '--pdeathsig', signal, '--'];
}

function openPrivateLog(path: string): number {
  const fd = openSync(path, 'a', 0o600);
  fchmodSync(fd, 0o600);
  return fd;
}
