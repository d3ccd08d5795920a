// A small network of hosts on this one machine, for cluster tests: Linux
// network namespaces (ip netns), joined by veth pairs to two bridges that
// live in a namespace of their own (the hub): a data network (apps, routers,
// the API) and a control network (NATS). Every address exists only inside
// these namespaces; nothing is added to the root namespace, so nothing here
// can collide with the machine's own networks or with another run.
//
// Names carry this process's pid and a random id, so parallel runs and
// leftovers never clash. Everything is removed (every process in every
// namespace killed by pid, then the namespaces, then the run's files) by
// t.teardown, and also on process exit, on SIGINT/SIGTERM/SIGHUP, and when
// the test's parent (tap) dies: tap 21 does not pass a SIGINT on to a
// running test file, and a second one kills tap alone, orphaning the test.
// A run killed with SIGKILL leaves its namespaces behind; the next run
// removes those of runs whose process is gone.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TeardownHost } from '../harness';

export type Network = 'data' | 'control';

const PREFIX = 'skiffc';
const NAME = new RegExp(`^${PREFIX}-(\\d+)-([0-9a-f]+)-`);
const DIR = new RegExp(`^skiff-cluster-(\\d+)-([0-9a-f]+)$`);
/** Interface names inside a host's namespace (one namespace per host, so fixed names do not clash). */
const IFACE: Record<Network, string> = { data: 'data', control: 'ctl' };
const BRIDGE: Record<Network, string> = { data: 'bdata', control: 'bctl' };
const SUBNET: Record<Network, number> = { data: 77, control: 78 };

export interface LabHost {
  name: string;
  ns: string;
  /** 1-based; the last octet of its addresses. */
  index: number;
  networks: Network[];
}

export interface LabProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  out(): string;
  err(): string;
  /** Resolves when it has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly running: boolean;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `ip ...`; throws with ip's own message. */
function ip(args: string[]): string {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(result.stderr || result.error?.message || '').trim()}`);
  return result.stdout;
}

function namespaces(): string[] {
  return ip(['netns', 'list']).split('\n').map((line) => line.split(' ')[0]!).filter((name) => name !== '');
}

function pidsIn(ns: string): number[] {
  const result = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  if (result.status !== 0) return [];
  return result.stdout.split('\n').filter((line) => /^\d+$/.test(line)).map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** SIGKILLs every process in the namespace and removes it; processes first, or they would keep it alive unnamed. */
function removeNamespace(ns: string): void {
  for (let round = 0; round < 3; round++) {
    const pids = pidsIn(ns);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    // A process forked during the kill would escape one round; a few rounds catch it.
    spawnSync('sleep', ['0.05']);
  }
  spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

/** Namespaces and directories of earlier runs whose process is gone (killed with SIGKILL): removed. */
function sweepLeftovers(): void {
  const dead = (pid: string) => Number(pid) !== process.pid && !alive(Number(pid));
  const stale = namespaces().filter((ns) => {
    const m = NAME.exec(ns);
    return m !== null && dead(m[1]!);
  });
  // Hosts before hubs: a hub's bridges go with it, and the hosts' veths with them.
  for (const ns of stale.sort((a, b) => Number(a.endsWith('-hub')) - Number(b.endsWith('-hub')))) removeNamespace(ns);
  for (const entry of readdirSync(tmpdir())) {
    const m = DIR.exec(entry);
    if (m !== null && dead(m[1]!)) rmSync(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

export class Lab {
  readonly id = randomBytes(3).toString('hex');
  /** Third octet of every address of this run: 10.77.<r>.<i> (data), 10.78.<r>.<i> (control). */
  readonly subnet = Math.floor(Math.random() * 254) + 1;
  /** The run's files (data dirs, homes, TMPDIR): 0755, since apps and builds run as other uids and must traverse it. */
  readonly dir: string;
  private readonly hub: string;
  private readonly hosts = new Map<string, LabHost>();
  private readonly processes = new Set<LabProcess>();
  private destroyed = false;
  private readonly onExit = (): void => this.destroy();
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.destroy();
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
  };
  private readonly parentWatch: NodeJS.Timeout;

  private constructor() {
    this.hub = this.nsName('hub');
    this.dir = join(tmpdir(), `skiff-cluster-${process.pid}-${this.id}`);
    process.on('exit', this.onExit);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, this.onSignal);
    const parent = process.ppid;
    this.parentWatch = setInterval(() => {
      if (process.ppid === parent) return;
      process.stderr.write('cluster lab: the test runner is gone; removing the lab\n');
      this.onSignal('SIGTERM');
    }, 500);
    this.parentWatch.unref();
  }

  /**
   * The hub with its two bridges, and a namespace per host: `nodes` on both
   * networks, `clients` on the data network only. Loopback is up everywhere
   * (`skiff up` checks its own ports on 127.0.0.1).
   */
  static create(t: TeardownHost, hosts: { nodes: string[]; clients: string[] }): Lab {
    sweepLeftovers();
    const lab = new Lab();
    t.teardown(() => lab.destroy());
    try {
      mkdirSync(lab.dir, { mode: 0o755 });
      chmodSync(lab.dir, 0o755);
      ip(['netns', 'add', lab.hub]);
      ip(['-n', lab.hub, 'link', 'set', 'lo', 'up']);
      for (const net of ['data', 'control'] as const) {
        ip(['-n', lab.hub, 'link', 'add', 'name', BRIDGE[net], 'type', 'bridge']);
        ip(['-n', lab.hub, 'link', 'set', BRIDGE[net], 'up']);
      }
      let index = 0;
      const all = [...hosts.nodes.map((name) => ({ name, networks: ['data', 'control'] as Network[] })), ...hosts.clients.map((name) => ({ name, networks: ['data'] as Network[] }))];
      for (const { name, networks } of all) {
        const host: LabHost = { name, ns: lab.nsName(name), index: ++index, networks };
        lab.hosts.set(name, host);
        ip(['netns', 'add', host.ns]);
        ip(['-n', host.ns, 'link', 'set', 'lo', 'up']);
        for (const net of networks) {
          // Made inside the hub with its peer straight in the host: no interface ever appears in the root namespace.
          const port = `${name}-${IFACE[net]}`.slice(0, 15);
          ip(['-n', lab.hub, 'link', 'add', 'name', port, 'type', 'veth', 'peer', 'name', IFACE[net], 'netns', host.ns]);
          ip(['-n', lab.hub, 'link', 'set', port, 'master', BRIDGE[net]]);
          ip(['-n', lab.hub, 'link', 'set', port, 'up']);
          ip(['-n', host.ns, 'addr', 'add', `${lab.address(name, net)}/24`, 'dev', IFACE[net]]);
          ip(['-n', host.ns, 'link', 'set', IFACE[net], 'up']);
        }
      }
    } catch (error) {
      lab.destroy();
      throw error;
    }
    return lab;
  }

  nsName(host: string): string {
    return `${PREFIX}-${process.pid}-${this.id}-${host}`;
  }

  host(name: string): LabHost {
    const host = this.hosts.get(name);
    if (host === undefined) throw new Error(`no host ${name} in this lab`);
    return host;
  }

  address(name: string, net: Network): string {
    const host = this.host(name);
    if (!host.networks.includes(net)) throw new Error(`${name} is not on the ${net} network`);
    return `10.${SUBNET[net]}.${this.subnet}.${host.index}`;
  }

  /** A directory of the run (0755), made on first use. */
  path(...parts: string[]): string {
    let dir = this.dir;
    for (const part of parts) {
      dir = join(dir, part);
      mkdirSync(dir, { recursive: true, mode: 0o755 });
    }
    return dir;
  }

  /**
   * Runs argv inside the host's namespace. `ip netns exec` execs the
   * program, so the pid is the program's own; under a parent-death signal,
   * so that it dies with the test process even when nothing else runs.
   * NODE_OPTIONS is dropped: tap's loader must not reach the platform's processes.
   */
  spawn(hostName: string, argv: string[], env: NodeJS.ProcessEnv = {}): LabProcess {
    if (this.destroyed) throw new Error('the lab is gone');
    const host = this.host(hostName);
    const fullEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    delete fullEnv.NODE_OPTIONS;
    const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'ip', 'netns', 'exec', host.ns, '/usr/bin/env', '-u', 'NODE_OPTIONS', ...argv], {
      env: fullEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    let running = true;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('error', () => {
        running = false;
        resolve({ code: null, signal: null });
      });
      child.once('close', (code, signal) => {
        running = false;
        resolve({ code, signal });
      });
    });
    const proc: LabProcess = {
      pid: child.pid ?? -1,
      child,
      out: () => out,
      err: () => err,
      exited,
      get running() {
        return running;
      },
    };
    this.processes.add(proc);
    void exited.then(() => this.processes.delete(proc));
    return proc;
  }

  /** Runs argv in the host's namespace to its end, killed (by pid) at the time limit. */
  async run(hostName: string, argv: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<RunResult> {
    const proc = this.spawn(hostName, argv, env);
    proc.child.stdin!.end();
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
    const { code } = await proc.exited;
    clearTimeout(timer);
    return { code, stdout: proc.out(), stderr: proc.err() };
  }

  /** Takes the host's interface on that network down (or up): a cable pulled, no reset sent to anyone. */
  linkDown(hostName: string, net: Network): void {
    ip(['-n', this.host(hostName).ns, 'link', 'set', IFACE[net], 'down']);
  }

  linkUp(hostName: string, net: Network): void {
    ip(['-n', this.host(hostName).ns, 'link', 'set', IFACE[net], 'up']);
  }

  /** Every process in the host's namespace. */
  pids(hostName: string): number[] {
    return pidsIn(this.host(hostName).ns);
  }

  /** SIGKILLs every process in the host's namespace (the host has crashed); its network stays. */
  killHost(hostName: string): number[] {
    const killed: number[] = [];
    for (let round = 0; round < 3; round++) {
      const pids = this.pids(hostName);
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
          killed.push(pid);
        } catch {
          // gone meanwhile
        }
      }
      spawnSync('sleep', ['0.05']);
    }
    return killed;
  }

  /** Idempotent and synchronous (it also runs in 'exit' and signal handlers). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearInterval(this.parentWatch);
    process.off('exit', this.onExit);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, this.onSignal);
    for (const proc of this.processes) {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    for (const host of this.hosts.values()) removeNamespace(host.ns);
    removeNamespace(this.hub);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
