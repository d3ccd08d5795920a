// `skiff ssh` on the DEA: sessions that run a command in an instance's `app/`
// directory, with the app's environment and user, their bytes on the session
// subjects of bus/platform.ts. At most SSH_MAX_SESSIONS_PER_INSTANCE per
// instance; they end when their process exits, on `kill`, when the instance
// stops or when the DEA stops.

import { spawn, type ChildProcess } from 'node:child_process';
import { readlink } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { Bus, BusMessage, Subscription } from '../bus/connection';
import type { Logger } from '../bus/log';
import { DROPLET_APP_DIR, SSH_CHANNEL, SSH_MAX_SESSIONS_PER_INSTANCE, sshSubjects, type SshChannel, type SshControl, type SshExit, type SshReply, type SshRequest } from '../bus/platform';
import { encodeOutput } from '../bus/ssh-frames';
import { decode, type RejectionCounter, validateSshControl } from '../bus/validate';
import { instanceProcesses, readProcessTable } from './proc';
import { exitStatus, isPtySlave, resizeArgv, sessionArgv, sessionEnv } from './ssh-command';
import type { GroupWatchdog } from './watchdog';

/** What a session needs of its instance. */
export interface SessionTarget {
  readonly id: string;
  readonly dir: string;
  environment(): Record<string, string>;
  launcher(): string[];
}

export interface SshOptions {
  bus: Bus;
  logger: Logger;
  rejections: RejectionCounter;
  watchdog: GroupWatchdog;
  /** util-linux `script` is installed: terminal sessions are possible. */
  canAllocateTerminal: boolean;
  /** Stdin bytes a session may hold for a command that does not read them; beyond, the session ends. */
  maxStdinBacklog?: number;
  /** How long a session's output may keep flowing after its process exited (a background child holding it open). */
  drainAfterExitMs?: number;
  /** Between SIGHUP and SIGKILL when a session is ended. */
  killGraceMs?: number;
}

const DEFAULT_STDIN_BACKLOG = 8 * 1024 * 1024;

class Session {
  private readonly subscriptions: Subscription[] = [];
  private readonly subjects: ReturnType<typeof sshSubjects>;
  private paused = false;
  private lastOutputAt = Date.now();
  private ended = false;
  private endReason: string | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  readonly finished: Promise<void>;

  constructor(
    readonly id: string,
    readonly target: SessionTarget,
    private readonly request: SshRequest,
    private readonly child: ChildProcess,
    private readonly options: SshOptions,
    private readonly onDone: (session: Session) => void,
  ) {
    this.subjects = sshSubjects(id);
    const { bus } = options;
    this.subscriptions.push(bus.subscribe(this.subjects.in, (msg) => this.onInput(msg)));
    this.subscriptions.push(bus.subscribe(this.subjects.ctl, (msg) => this.onControl(msg)));
    this.forward(child.stdout!, SSH_CHANNEL.stdout);
    this.forward(child.stderr!, SSH_CHANNEL.stderr);
    // A command that exits without reading its stdin closes the pipe under our writes.
    child.stdin!.on('error', () => {});
    if (child.pid !== undefined) options.watchdog.watch(child.pid);
    this.finished = new Promise((resolve) => {
      child.once('error', (err) => {
        // spawn itself failed: no 'exit' follows.
        void this.finish({ exit_status: 127, error: `cannot run the command: ${err.message}` }).then(resolve);
      });
      child.once('exit', (code, signal) => {
        const status = exitStatus(code, signal ? constants.signals[signal] : undefined);
        void this.finish({ exit_status: status, ...(signal ? { signal } : {}) }).then(resolve);
      });
    });
  }

  private forward(stream: NodeJS.ReadableStream, channel: SshChannel): void {
    stream.on('data', (chunk: Buffer) => {
      this.lastOutputAt = Date.now();
      for (const frame of encodeOutput(channel, chunk)) this.publish(this.subjects.out, frame);
    });
  }

  private publish(subject: string, data: Uint8Array | object): void {
    try {
      this.options.bus.publish(subject, data);
    } catch (err) {
      this.options.logger.warn('ssh publish failed', { session: this.id, error: err });
    }
  }

  private onInput(msg: BusMessage): void {
    const stdin = this.child.stdin!;
    if (stdin.destroyed || stdin.writableEnded) return;
    if (msg.data.length === 0) {
      stdin.end();
      return;
    }
    stdin.write(Buffer.from(msg.data));
    if (stdin.writableLength > (this.options.maxStdinBacklog ?? DEFAULT_STDIN_BACKLOG)) {
      this.kill('the command does not read its input fast enough');
    }
  }

  private onControl(msg: BusMessage): void {
    const checked = decode(msg.data, validateSshControl);
    if (!checked.ok) {
      this.options.rejections.reject('ssh.<session>.ctl', checked.error);
      return;
    }
    const control: SshControl = checked.value;
    if ('ping' in control) msg.respond({ ok: !this.ended });
    else if ('kill' in control) this.kill();
    else if ('pause' in control) this.setPaused(true);
    else if ('resume' in control) this.setPaused(false);
    else void this.resize(control.resize[0], control.resize[1]);
  }

  private setPaused(paused: boolean): void {
    if (this.paused === paused) return;
    this.paused = paused;
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      if (paused) stream.pause();
      else stream.resume();
    }
  }

  /** The terminal is script's child's stdin; setting its size sends SIGWINCH to what runs on it. */
  private async resize(cols: number, rows: number): Promise<void> {
    if (!this.request.tty || this.child.pid === undefined || this.ended) return;
    const table = await readProcessTable().catch(() => []);
    for (const p of table) {
      if (p.ppid !== this.child.pid) continue;
      const terminal = await readlink(`/proc/${p.pid}/fd/0`).catch(() => '');
      if (!isPtySlave(terminal)) continue;
      const [command, ...args] = resizeArgv(this.target.launcher(), terminal, cols, rows);
      const stty = spawn(command!, args, { stdio: 'ignore', env: { PATH: '/usr/bin:/bin' } });
      stty.on('error', () => {});
      return;
    }
  }

  /** Hangs up the session's processes; what is left after the grace period is killed. */
  kill(reason?: string): void {
    this.endReason ??= reason;
    const pid = this.child.pid;
    if (pid === undefined || this.killTimer !== undefined) return;
    const hangUp = async (sig: NodeJS.Signals) => {
      const table = await readProcessTable().catch(() => []);
      signal(-pid, sig);
      for (const p of instanceProcesses(table, pid)) signal(p.pid, sig);
    };
    void hangUp('SIGHUP');
    this.setPaused(false);
    this.killTimer = setTimeout(() => void hangUp('SIGKILL'), this.options.killGraceMs ?? 2000);
    this.killTimer.unref();
  }

  private async finish(exit: SshExit): Promise<void> {
    if (this.ended) return;
    const pid = this.child.pid;
    // What the command left running in its group goes with it, so the output pipes can close.
    if (pid !== undefined) signal(-pid, 'SIGKILL');
    const drainMs = this.options.drainAfterExitMs ?? 2000;
    // Output already produced still goes out, however long a paused (slow) user takes to read it.
    this.lastOutputAt = Date.now();
    while (!(this.child.stdout!.readableEnded && this.child.stderr!.readableEnded)) {
      if (this.paused) this.lastOutputAt = Date.now();
      else if (Date.now() - this.lastOutputAt > drainMs) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    this.ended = true;
    clearTimeout(this.killTimer);
    if (pid !== undefined) this.options.watchdog.forget(pid);
    this.child.stdout!.destroy();
    this.child.stderr!.destroy();
    this.child.stdin!.destroy();
    if (this.endReason !== undefined && exit.error === undefined) exit.error = this.endReason;
    this.publish(this.subjects.exit, exit);
    for (const sub of this.subscriptions) sub.unsubscribe();
    this.options.logger.info('ssh session ended', { session: this.id, instance: this.target.id, exit_status: exit.exit_status, reason: this.endReason });
    this.onDone(this);
  }
}

export class SshSessions {
  private readonly byInstance = new Map<string, Set<Session>>();

  constructor(private readonly options: SshOptions) {}

  /** Sessions open now, per instance id (for tests and status). */
  count(instanceId?: string): number {
    if (instanceId !== undefined) return this.byInstance.get(instanceId)?.size ?? 0;
    let total = 0;
    for (const set of this.byInstance.values()) total += set.size;
    return total;
  }

  /** Starts a session; the reply tells the controller whether to expect output. */
  open(request: SshRequest, target: SessionTarget): SshReply {
    const open = this.byInstance.get(target.id) ?? new Set<Session>();
    if (open.size >= SSH_MAX_SESSIONS_PER_INSTANCE) {
      return { error: `instance has ${SSH_MAX_SESSIONS_PER_INSTANCE} ssh sessions already: end one first`, code: 'too_many_sessions' };
    }
    if (request.tty && !this.options.canAllocateTerminal) {
      return { error: 'this DEA cannot allocate terminals (util-linux script is not installed): give a command, without a terminal', code: 'failed' };
    }
    const [command, ...args] = sessionArgv(target.launcher(), request);
    const child = spawn(command!, args, {
      cwd: join(target.dir, DROPLET_APP_DIR),
      env: sessionEnv(target.environment(), request.tty, request.term),
      // Own process group, so the whole session can be hung up at once.
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const session = new Session(request.session, target, request, child, this.options, (done) => {
      const set = this.byInstance.get(done.target.id);
      set?.delete(done);
      if (set?.size === 0) this.byInstance.delete(done.target.id);
    });
    open.add(session);
    this.byInstance.set(target.id, open);
    this.options.logger.info('ssh session started', { session: request.session, instance: target.id, tty: request.tty, pid: child.pid });
    return { ok: true };
  }

  /** Ends an instance's sessions: it is stopping, or its directory is about to go. */
  endFor(instanceId: string, reason: string): void {
    for (const session of this.byInstance.get(instanceId) ?? []) session.kill(reason);
  }

  /** Ends every session and waits until they reported their exit. */
  async closeAll(reason: string): Promise<void> {
    const all = [...this.byInstance.values()].flatMap((set) => [...set]);
    for (const session of all) session.kill(reason);
    await Promise.all(all.map((s) => s.finished));
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}
