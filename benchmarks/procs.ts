// Child-process lifecycle for the benchmark: start, wait for readiness, and
// end strictly by pid (SIGTERM, then SIGKILL), including on Ctrl-C, SIGTERM,
// uncaught errors and normal exit. Nothing here kills by name.

import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';

export interface Managed {
  name: string;
  pid: number;
  child: ChildProcess;
  /** Extra pids owned by this child (e.g. nginx workers) to SIGKILL if it will not die. */
  extraPids: number[];
  exited: boolean;
  exitInfo: string;
  /** Last lines of stdout+stderr, for error messages. */
  tail: string[];
  exitPromise: Promise<void>;
}

const registry = new Set<Managed>();
let pdeathsigSupported: boolean | undefined;

/** `setpriv --pdeathsig TERM` execs the command in place (same pid) and makes
 * the kernel send it SIGTERM if this process dies, even by SIGKILL. */
function hasPdeathsig(): boolean {
  if (pdeathsigSupported === undefined) {
    const r = spawnSync('setpriv', ['--pdeathsig', 'TERM', '--', 'true'], { stdio: 'ignore', timeout: 5000 });
    pdeathsigSupported = r.status === 0;
  }
  return pdeathsigSupported;
}

export interface StartOptions {
  name: string;
  cmd: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Keep stdin as an open pipe (our backend exits when it closes). */
  stdinPipe?: boolean;
}

export function startProcess(opts: StartOptions): Managed {
  const useSetpriv = hasPdeathsig();
  const cmd = useSetpriv ? 'setpriv' : opts.cmd;
  const args = useSetpriv ? ['--pdeathsig', 'TERM', '--', opts.cmd, ...opts.args] : opts.args;
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: [opts.stdinPipe ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT etc.); the error event follows.
    throw new Error(`${opts.name}: could not start ${opts.cmd}`);
  }
  const m: Managed = {
    name: opts.name,
    pid: child.pid,
    child,
    extraPids: [],
    exited: false,
    exitInfo: '',
    tail: [],
    exitPromise: Promise.resolve(),
  };
  m.exitPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      m.exited = true;
      m.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
      registry.delete(m);
      resolve();
    });
    child.once('error', (err) => {
      m.exited = true;
      m.exitInfo = `error ${err.message}`;
      registry.delete(m);
      resolve();
    });
  });
  const keep = (data: Buffer): void => {
    for (const line of data.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      m.tail.push(line);
      if (m.tail.length > 20) m.tail.shift();
    }
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  registry.add(m);
  return m;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** SIGTERM by pid, wait up to graceMs, then SIGKILL the pid and its known extra pids. */
export async function stopProcess(m: Managed, graceMs = 3000): Promise<void> {
  if (!m.exited) {
    signal(m.pid, 'SIGTERM');
    const timer = sleep(graceMs).then(() => 'timeout' as const);
    const r = await Promise.race([m.exitPromise.then(() => 'exited' as const), timer]);
    if (r === 'timeout' && !m.exited) {
      signal(m.pid, 'SIGKILL');
      await Promise.race([m.exitPromise, sleep(2000)]);
    }
  }
  // Workers of a master that was killed hard would be orphaned: end them too.
  for (const pid of m.extraPids) {
    if (!alive(pid)) continue;
    signal(pid, 'SIGTERM');
    for (let i = 0; i < 20 && alive(pid); i++) await sleep(100);
    if (alive(pid)) signal(pid, 'SIGKILL');
  }
  registry.delete(m);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...registry].reverse().map((m) => stopProcess(m)));
}

/** Synchronous last resort (for process 'exit'): SIGKILL everything still registered. */
function killAllSync(): void {
  for (const m of registry) {
    if (!m.exited) signal(m.pid, 'SIGKILL');
    for (const pid of m.extraPids) signal(pid, 'SIGKILL');
  }
  registry.clear();
}

let handlersInstalled = false;
let shuttingDown = false;

/** Install once: Ctrl-C / SIGTERM / SIGHUP / uncaught errors end every child by pid, then exit. */
export function installCleanupHandlers(onBeforeExit?: () => Promise<void>): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const bail = (why: string, code: number): void => {
    if (shuttingDown) {
      killAllSync();
      process.exit(code);
    }
    shuttingDown = true;
    process.stderr.write(`\nbench: ${why}; stopping child processes...\n`);
    const hard = setTimeout(() => {
      killAllSync();
      process.exit(code);
    }, 10000);
    void (async () => {
      try {
        if (onBeforeExit) await onBeforeExit();
      } catch {
        /* ignore */
      }
      await stopAll();
      clearTimeout(hard);
      process.exit(code);
    })();
  };
  process.on('SIGINT', () => bail('interrupted', 130));
  process.on('SIGTERM', () => bail('terminated', 143));
  process.on('SIGHUP', () => bail('hangup', 129));
  process.on('uncaughtException', (err) => {
    process.stderr.write(`bench: uncaught error: ${err.stack ?? String(err)}\n`);
    bail('uncaught error', 1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`bench: unhandled rejection: ${err instanceof Error ? err.stack : String(err)}\n`);
    bail('unhandled rejection', 1);
  });
  process.on('exit', killAllSync);
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      s.removeAllListeners();
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Wait until 127.0.0.1:port accepts connections; fail early if the process exits. */
export async function waitForPort(m: Managed, port: number, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (m.exited) throw new Error(`${m.name} exited (${m.exitInfo}) before listening on ${port}: ${m.tail.slice(-5).join(' | ')}`);
    if (await tryConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`${m.name} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms: ${m.tail.slice(-5).join(' | ')}`);
}

/** Direct children of pid, from /proc/<pid>/task/<tid>/children. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      const txt = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (txt) for (const p of txt.split(/\s+/)) out.push(Number(p));
    } catch {
      /* task gone */
    }
  }
  return out;
}

/** Version line of a tool: first non-empty line of stdout+stderr, or undefined if not installed. */
export function toolVersion(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  if (r.error) return undefined;
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
  return text.split('\n').map((l) => l.trim()).find((l) => l !== '');
}

/** Absolute path of a command if it is on PATH (or in /usr/sbin, /sbin), else undefined. */
export function which(cmd: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/local/sbin']);
  for (const d of dirs) {
    if (!d) continue;
    const p = `${d}/${cmd}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Soft and hard RLIMIT_NOFILE of a process, from /proc/<pid>/limits. */
export function nofileLimit(pid: number): { soft: number; hard: number } | undefined {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'));
    if (!m) return undefined;
    const n = (s: string | undefined): number => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s));
    return { soft: n(m[1]), hard: n(m[2]) };
  } catch {
    return undefined;
  }
}

/**
 * Makes sure one process (by pid) may open `need` descriptors: if its soft
 * limit is lower, raises that process's limit alone with `prlimit --pid`
 * (the hard limit too if needed, which takes CAP_SYS_RESOURCE). Nothing
 * system-wide changes. Returns the soft limit in force afterwards and what
 * was done.
 */
export function ensureNofile(pid: number, need: number): { soft: number; raised: boolean; detail: string } {
  const cur = nofileLimit(pid);
  if (!cur) return { soft: 0, raised: false, detail: `no /proc/${pid}/limits` };
  if (cur.soft >= need) return { soft: cur.soft, raised: false, detail: `limit ${cur.soft} suffices` };
  const bin = which('prlimit');
  if (!bin) return { soft: cur.soft, raised: false, detail: `limit ${cur.soft} < ${need} and prlimit is not installed` };
  const set = (soft: number, hard: number): string => {
    const r = spawnSync(bin, ['--pid', String(pid), `--nofile=${soft}:${hard}`], { encoding: 'utf8', timeout: 5000 });
    return r.status === 0 ? '' : (r.stderr || r.error?.message || `exit ${r.status}`).trim().replace(/^prlimit: /, '');
  };
  let err = set(need, Math.max(need, cur.hard));
  // Above the hard limit without the privilege: at least the soft limit up to the hard one.
  if (err && cur.soft < cur.hard) set(cur.hard, cur.hard);
  const after = nofileLimit(pid) ?? cur;
  const changed = after.soft !== cur.soft || after.hard !== cur.hard ? `${cur.soft}:${cur.hard} -> ${after.soft}:${after.hard} for pid ${pid} only` : `${cur.soft}:${cur.hard}`;
  if (after.soft >= need) return { soft: after.soft, raised: true, detail: `raised ${changed}` };
  if (!err) err = 'no effect';
  return { soft: after.soft, raised: after.soft > cur.soft, detail: `limit ${changed} < ${need} wanted (raising the hard limit: ${err})` };
}

export { sleep };
