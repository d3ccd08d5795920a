// Process trees from /proc: which processes belong to an instance, and what
// they use. An instance is its root process, everything descended from it,
// and everything still in its session (a daemonising child is re-parented to
// init but keeps the session unless it calls setsid itself).

import { spawnSync } from 'node:child_process';
import { readdir, readFile, readlink } from 'node:fs/promises';

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** Clock ticks in user and kernel mode. */
  utime: number;
  stime: number;
  /** Clock ticks after boot; with pid, identifies a process across pid reuse. */
  starttime: number;
  /** Pages. */
  rss: number;
}

/** Parses /proc/<pid>/stat. comm may hold spaces and parentheses, so fields are counted from the last ')'. */
export function parseStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state); field N is rest[N - 3].
  const field = (n: number) => Number(rest[n - 3]);
  const stat: ProcStat = {
    pid,
    comm: text.slice(open + 1, close),
    state: rest[0] ?? '?',
    ppid: field(4),
    pgrp: field(5),
    session: field(6),
    utime: field(14),
    stime: field(15),
    starttime: field(22),
    rss: field(24),
  };
  return Number.isInteger(pid) && Number.isFinite(stat.rss) && Number.isFinite(stat.starttime) ? stat : undefined;
}

export async function readStat(pid: number, procRoot = '/proc'): Promise<ProcStat | undefined> {
  try {
    return parseStat(await readFile(`${procRoot}/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Every process's stat; processes that vanish while being read are skipped. */
export async function readProcessTable(procRoot = '/proc'): Promise<ProcStat[]> {
  const names = await readdir(procRoot);
  const stats = await Promise.all(names.filter((n) => /^\d+$/.test(n)).map((n) => readStat(Number(n), procRoot)));
  return stats.filter((s): s is ProcStat => s !== undefined);
}

/** The instance's processes: the root, its descendants, and the rest of its session. Zombies use nothing and are left out. */
export function instanceProcesses(table: ProcStat[], rootPid: number, session: number = rootPid): ProcStat[] {
  const children = new Map<number, ProcStat[]>();
  for (const p of table) {
    const list = children.get(p.ppid);
    if (list) list.push(p);
    else children.set(p.ppid, [p]);
  }
  const found = new Map<number, ProcStat>();
  const visit = (p: ProcStat) => {
    if (found.has(p.pid)) return;
    found.set(p.pid, p);
    for (const child of children.get(p.pid) ?? []) visit(child);
  };
  const root = table.find((p) => p.pid === rootPid);
  if (root) visit(root);
  // Session members re-parented away from the root, and their descendants.
  for (const p of table) if (p.session === session && session > 1) visit(p);
  return [...found.values()].filter((p) => p.state !== 'Z');
}

export interface TreeUsage {
  /** Bytes of resident memory. */
  rssBytes: number;
  /** Clock ticks of CPU used by the live processes. */
  cpuTicks: number;
  pids: number[];
}

export function treeUsage(processes: ProcStat[], pageSize: number): TreeUsage {
  let rss = 0;
  let ticks = 0;
  for (const p of processes) {
    rss += p.rss;
    ticks += p.utime + p.stime;
  }
  return { rssBytes: rss * pageSize, cpuTicks: ticks, pids: processes.map((p) => p.pid) };
}

/** Percent of one core between two samples; 0 when a process left the tree and the total went down. */
export function cpuPercent(prevTicks: number, ticks: number, elapsedMs: number, ticksPerSecond: number): number {
  if (elapsedMs <= 0 || ticks <= prevTicks) return 0;
  return Math.round(((ticks - prevTicks) / ticksPerSecond / (elapsedMs / 1000)) * 1000) / 10;
}

let systemConstants: { pageSize: number; ticksPerSecond: number } | undefined;

/** Page size and clock ticks per second, from getconf once (4096 and 100 when it is missing). */
export function sysconf(): { pageSize: number; ticksPerSecond: number } {
  if (!systemConstants) {
    const ask = (name: string, fallback: number) => {
      const out = spawnSync('getconf', [name], { encoding: 'utf8' });
      const n = Number(out.stdout?.trim());
      return out.status === 0 && Number.isInteger(n) && n > 0 ? n : fallback;
    };
    systemConstants = { pageSize: ask('PAGESIZE', 4096), ticksPerSecond: ask('CLK_TCK', 100) };
  }
  return systemConstants;
}

/** Inodes of the TCP sockets listening on `port` (IPv4 and IPv6), from /proc/net/tcp and tcp6. */
export async function listeningSocketInodes(port: number, procRoot = '/proc'): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const file of ['net/tcp', 'net/tcp6']) {
    let text: string;
    try {
      text = await readFile(`${procRoot}/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== '0A') continue; // 0A: LISTEN
      const local = fields[1]!;
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) inodes.add(fields[9]!);
    }
  }
  return inodes;
}

/** Whether one of `pids` has one of the socket `inodes` open. */
export async function holdsSocket(pids: readonly number[], inodes: ReadonlySet<string>, procRoot = '/proc'): Promise<boolean> {
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await readdir(`${procRoot}/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(await readlink(`${procRoot}/${pid}/fd/${fd}`));
        if (match !== null && inodes.has(match[1]!)) return true;
      } catch {
        // closed meanwhile
      }
    }
  }
  return false;
}
