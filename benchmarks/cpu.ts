// CPU accounting from /proc: utime+stime of given pids, and whole-machine
// busy time, read before and after each measurement.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

let clkTck: number | undefined;

export function clockTicksPerSecond(): number {
  if (clkTck === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 });
    const n = Number((r.stdout ?? '').trim());
    clkTck = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return clkTck;
}

/** utime+stime of one process (all its threads) in seconds, or undefined if it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  let txt: string;
  try {
    txt = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parentheses: split after the last ')'.
  const rest = txt.slice(txt.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return (utime + stime) / clockTicksPerSecond();
}

/** Sum over pids; pids that vanished count as missing (returned separately). */
export function cpuSnapshot(pids: number[]): { seconds: number; missing: number[] } {
  let seconds = 0;
  const missing: number[] = [];
  for (const pid of pids) {
    const s = processCpuSeconds(pid);
    if (s === undefined) missing.push(pid);
    else seconds += s;
  }
  return { seconds, missing };
}

export interface SystemCpu {
  busy: number;
  total: number;
}

/** Aggregate "cpu" line of /proc/stat, in ticks. */
export function systemCpu(): SystemCpu | undefined {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest fields are inside user/nice)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    const busy = user + nice + system + irq + softirq + steal;
    return { busy, total: busy + idle + iowait };
  } catch {
    return undefined;
  }
}

/** Share of all cores busy between two samples, 0..1. */
export function busyShare(a: SystemCpu | undefined, b: SystemCpu | undefined): number | undefined {
  if (!a || !b || b.total <= a.total) return undefined;
  return (b.busy - a.busy) / (b.total - a.total);
}
