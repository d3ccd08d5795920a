// Test harness: real nats-server processes for tap tests, on free ports, that
// never outlive the test file. Each server is
// - stopped by t.teardown (SIGTERM, SIGKILL after 3 s) and its store removed;
// - killed on process 'exit' if a test forgot or crashed;
// - started under `setpriv --pdeathsig SIGKILL` when available, so the kernel
//   kills it even when the test process itself is killed (tap's timeout sends
//   SIGALRM then SIGKILL, and neither runs 'exit' handlers).

import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, type Logger, type LogLevel } from '../bus/log';

export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  /** pid of the current nats-server process (changes on restart). */
  readonly pid: number;
  /** JetStream store directory, or undefined without JetStream. */
  readonly storeDir: string | undefined;
  /** Stops the server (SIGTERM, then SIGKILL after 3 s). Idempotent; the store is kept for restart(). */
  stop(): Promise<void>;
  /** Starts a new nats-server on the same port and store directory. */
  restart(): Promise<void>;
}

export interface StartNatsOptions {
  /** Default true. */
  jetstream?: boolean;
  /** Extra nats-server arguments, e.g. ['--user', 'u', '--pass', 'p']. */
  args?: string[];
}

const STOP_GRACE_MS = 3000;
const READY_TIMEOUT_MS = 10_000;

const running = new Set<ChildProcess>();

process.on('exit', () => {
  for (const child of running) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

export function findNatsServer(): string {
  const candidates = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => dir !== '')
    .map((dir) => join(dir, 'nats-server'));
  candidates.push('/usr/sbin/nats-server');
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error('nats-server not found on PATH or at /usr/sbin/nats-server; install it with: apt-get install -y nats-server');
  return found;
}

let parentDeathWrapper: string[] | undefined;

/** `setpriv --pdeathsig SIGKILL --` where available: the kernel kills the child if the test process dies. */
export function deathSignalPrefix(): string[] {
  if (parentDeathWrapper === undefined) {
    const probe = spawnSync('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'true'], { stdio: 'ignore' });
    parentDeathWrapper = probe.status === 0 ? ['setpriv', '--pdeathsig', 'SIGKILL', '--'] : [];
  }
  return parentDeathWrapper;
}

const tracked = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Spawns a process the test owns: under the parent-death signal, and killed
 * by pid when the test process exits with it still running (the test's own
 * teardown stops it first; this is the backstop).
 */
export function spawnTracked(command: string, args: string[], options: SpawnOptions): ChildProcess {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const child of tracked) if (child.pid !== undefined && isAlive(child.pid)) process.kill(child.pid, 'SIGKILL');
    });
  }
  const [first, ...rest] = [...deathSignalPrefix(), command, ...args];
  const child = spawn(first!, rest, options);
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
  return child;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not allocate a port'))));
    });
  });
}

export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const connected = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect({ port, host });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => {
        socket.destroy();
        resolve(false);
      });
    });
    if (connected) return;
    if (Date.now() >= deadline) throw new Error(`nothing accepted connections on ${host}:${port} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** True while the process runs; a zombie (dead, not yet reaped by its parent) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may hold spaces or parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startNats(t: TeardownHost, opts: StartNatsOptions = {}): Promise<NatsServer> {
  const binary = findNatsServer();
  const jetstream = opts.jetstream !== false;
  const storeDir = jetstream ? mkdtempSync(join(tmpdir(), 'skiff-nats-')) : undefined;
  const extraArgs = opts.args ?? [];
  // Only the client port: no -m (the HTTP monitor stays off by default), no
  // cluster or leafnode ports, so parallel test files cannot clash.
  const argsFor = (port: number) => [
    '-a', '127.0.0.1', '-p', String(port),
    ...(storeDir ? ['-js', '-sd', storeDir] : []),
    ...extraArgs,
  ];

  // The port from freePort() is free only until someone else takes it; retry on a clash.
  let port = 0;
  let child: ChildProcess | undefined;
  let lastError: unknown;
  for (let attempt = 0; attempt < 3 && !child; attempt++) {
    port = await freePort();
    try {
      child = await launch(binary, argsFor(port), port);
    } catch (err) {
      lastError = err;
    }
  }
  if (!child) {
    if (storeDir) rmSync(storeDir, { recursive: true, force: true });
    throw lastError;
  }

  let current: ChildProcess = child;
  let removed = false;
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return current.pid ?? -1;
    },
    storeDir,
    stop: () => terminate(current).then(() => undefined),
    async restart() {
      if (removed) throw new Error('nats-server was torn down; cannot restart');
      await terminate(current);
      current = await launch(binary, argsFor(port), port);
    },
  };
  t.teardown(async () => {
    removed = true;
    await terminate(current);
    if (storeDir) rmSync(storeDir, { recursive: true, force: true });
  });
  return server;
}

/** Spawns nats-server and resolves once it says it is ready and accepts connections. */
async function launch(binary: string, args: string[], port: number): Promise<ChildProcess> {
  const [command, ...prefixArgs] = [...deathSignalPrefix(), binary];
  const child = spawn(command!, [...prefixArgs, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));

  // nats-server logs to stderr; keep reading it for good (a full pipe would block
  // the server) and keep the tail for error messages.
  let tail = '';
  let ready = false;
  const readyWaiters: Array<() => void> = [];
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-4000);
    if (!ready && tail.includes('Server is ready')) {
      ready = true;
      readyWaiters.splice(0).forEach((wake) => wake());
    }
  });

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server not ready within ${READY_TIMEOUT_MS} ms:\n${tail}`)), READY_TIMEOUT_MS);
      const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
        reject(new Error(`nats-server exited early (${signal ?? `code ${code}`}):\n${tail}`));
      child.once('exit', onExit);
      child.once('error', reject);
      readyWaiters.push(() => {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve();
      });
    });
    await waitForPort(port);
  } catch (err) {
    await terminate(child);
    throw err;
  }
  return child;
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM, then SIGKILL after the grace period; resolves with the exit code once the process is reaped. */
export async function terminate(child: ChildProcess, graceMs = STOP_GRACE_MS): Promise<number | null> {
  if (hasExited(child) || child.pid === undefined) return child.exitCode;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const killer = setTimeout(() => {
    if (!hasExited(child)) child.kill('SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(killer);
  return child.exitCode;
}

/** A logger writing into an array, for asserting on log lines. */
export function captureLog(component = 'test', level: LogLevel = 'debug'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter((line) => line !== ''));
      done();
    },
  });
  return { logger: createLogger(component, { level, stream }), lines };
}

/** Polls until check() is true; fails with the description after timeoutMs. */
export async function eventually(check: () => boolean | Promise<boolean>, description: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${description}`);
    await sleep(20);
  }
}

/** The value of one series in Prometheus text (labels given must all match), or undefined. */
export function metricSample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const series = line.slice(0, line.lastIndexOf(' '));
    const bare = series.split('{')[0];
    if (bare !== name) continue;
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}
