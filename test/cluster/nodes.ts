// Skiff on the lab's hosts (netns.ts): `skiff up` nodes, the admin CLI, the
// client agent (client.ts) and the operator's NATS commands (ops.ts), each run
// inside a namespace. The platform runs compiled, from dist/, as in
// production; so do client.ts and ops.ts.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SKIFF_BIN } from '../cli_harness';
import { sleep } from '../harness';
import type { Lab, LabProcess, RunResult } from './netns';
import type { StreamState } from './ops';

const DIST = join(__dirname, '..', '..', 'dist', 'test', 'cluster');

export interface NodeSpec {
  roles: string[];
  /** The first node's join: token; given to a joining node in SKIFF_UP_JOIN, never on its command line. */
  join?: string;
  natsServer?: boolean;
  /** The app uids of the run (every node: the controller hands them out, the DEAs run apps as them). */
  appUids: string;
}

export class SkiffNode {
  readonly dataDir: string;
  /** SKIFF_HOME of `skiff up`: the first node logs the admin CLI in there. */
  readonly home: string;
  proc: LabProcess | undefined;

  constructor(
    private readonly lab: Lab,
    readonly name: string,
    private readonly appUids: string,
  ) {
    this.dataDir = join(lab.path(name), 'data');
    this.home = lab.path(name, 'home');
  }

  get data(): string {
    return this.lab.address(this.name, 'data');
  }

  get control(): string {
    return this.lab.address(this.name, 'control');
  }

  private env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      SKIFF_HOME: this.home,
      // The stager's work dir and the like stay inside the run's directory, which the lab removes.
      TMPDIR: this.lab.path(this.name, 'tmp'),
      SKIFF_UP_APP_UIDS: this.appUids,
      ...extra,
    };
  }

  /** `skiff up` for the first time: the node's name, roles and addresses. */
  start(spec: Omit<NodeSpec, 'appUids'>): LabProcess {
    const args = [
      'up', '--data-dir', this.dataDir, '--node', this.name, '--roles', spec.roles.join(','),
      '--advertise', this.data, '--nats-advertise', this.control,
      ...(spec.natsServer ? ['--nats-server'] : []),
    ];
    this.proc = this.lab.spawn(this.name, [process.execPath, SKIFF_BIN, ...args], this.env(spec.join === undefined ? {} : { SKIFF_UP_JOIN: spec.join }));
    return this.proc;
  }

  /** `skiff up --data-dir D` alone: everything else comes from its node.json. */
  restart(): LabProcess {
    this.proc = this.lab.spawn(this.name, [process.execPath, SKIFF_BIN, 'up', '--data-dir', this.dataDir], this.env());
    return this.proc;
  }

  out(): string {
    return this.proc?.out() ?? '';
  }

  err(): string {
    return this.proc?.err() ?? '';
  }

  /** Waits for a line of `skiff up`'s stdout (or, with `stream: 'err'`, its log); fails early when it exits. */
  async waitFor(pattern: RegExp, timeoutMs: number, stream: 'out' | 'err' = 'out'): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = (stream === 'out' ? this.out() : this.err()).match(pattern);
      if (m) return m;
      if (this.proc !== undefined && !this.proc.running) throw new Error(`skiff up on ${this.name} exited before ${pattern}:\n${this.err().slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`skiff up on ${this.name}: no ${pattern} within ${timeoutMs} ms:\n${this.err().slice(-3000)}`);
      await sleep(200);
    }
  }

  /** The node's remembered state. */
  nodeJson(): { name: string; roles: string[] } {
    return JSON.parse(readFileSync(join(this.dataDir, 'node.json'), 'utf8')) as { name: string; roles: string[] };
  }

  /** Basic auth of the router's /varz and /routes, "user:password". */
  routerStatusAuth(): string {
    const { user, password } = JSON.parse(readFileSync(join(this.dataDir, 'router-status.json'), 'utf8')) as { user: string; password: string };
    return `${user}:${password}`;
  }

  /** The pid of the node's nats-server (a child of `skiff up` in its namespace). */
  natsServerPid(): number | undefined {
    return this.lab.pids(this.name).find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'nats-server';
      } catch {
        return false;
      }
    });
  }

  /** The operator's NATS commands (ops.ts), run in this node's namespace with its operator.json. */
  async ops<T>(args: string[], timeoutMs = 20_000): Promise<T> {
    const result = await this.lab.run(this.name, [process.execPath, join(DIST, 'ops.js'), join(this.dataDir, 'nats', 'operator.json'), ...args], {}, timeoutMs);
    if (result.code !== 0) throw new Error(`ops ${args.join(' ')} on ${this.name}: ${result.stderr.trim() || `exit ${result.code}`}`);
    return JSON.parse(result.stdout) as T;
  }

  streams(): Promise<StreamState[]> {
    return this.ops<StreamState[]>(['streams']);
  }
}

/** The admin CLI, run on a host of the lab with the home the first node logged in. */
export function cli(lab: Lab, host: string, home: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return lab.run(host, [process.execPath, SKIFF_BIN, ...args], { SKIFF_HOME: home }, timeoutMs);
}

export interface PollLine {
  poll: string;
  at: number;
  ms: number;
  status?: number;
  body?: string;
  error?: string;
}

export interface Reply {
  status?: number;
  body?: string;
  error?: string;
}

/** The client agent (client.ts) on a host of the lab: one-off GETs, and polling whose every line is kept. */
export class Client {
  readonly polls: PollLine[] = [];
  private readonly proc: LabProcess;
  private nextId = 1;
  private readonly pending = new Map<number, (reply: Reply) => void>();
  private buffered = '';

  constructor(lab: Lab, host: string) {
    this.proc = lab.spawn(host, [process.execPath, join(DIST, 'client.js')]);
    this.proc.child.stdout!.on('data', (chunk: string) => {
      this.buffered += chunk;
      let newline: number;
      while ((newline = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, newline);
        this.buffered = this.buffered.slice(newline + 1);
        this.onLine(line);
      }
    });
  }

  private onLine(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof message.poll === 'string') this.polls.push(message as unknown as PollLine);
    else if (typeof message.id === 'number') {
      this.pending.get(message.id)?.(message as Reply);
      this.pending.delete(message.id);
    }
  }

  private send(request: object): void {
    this.proc.child.stdin!.write(JSON.stringify(request) + '\n');
  }

  get(host: string, port: number, options: { header?: string; path?: string; auth?: string } = {}): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ error: 'the client agent did not answer within 10 s' });
      }, 10_000);
      this.pending.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.send({ id, op: 'get', host, port, ...options });
    });
  }

  poll(targets: Array<{ name: string; host: string; port: number; header: string }>, intervalMs: number): void {
    this.send({ op: 'poll', targets, intervalMs });
  }

  stopPolling(): void {
    this.send({ op: 'stop' });
  }

  close(): void {
    this.proc.child.stdin!.end();
  }
}
