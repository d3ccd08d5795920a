// Memory and descriptor accounting from /proc, for the ws-idle case.

import * as fs from 'node:fs';

/** Resident set size of one process in bytes (VmRSS), or undefined if it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Sum of RSS over pids (undefined if any is gone). */
export function rssSum(pids: number[]): number | undefined {
  let sum = 0;
  for (const pid of pids) {
    const r = rssBytes(pid);
    if (r === undefined) return undefined;
    sum += r;
  }
  return pids.length ? sum : undefined;
}

/** Open file descriptors of a process, or undefined. */
export function fdCount(pid: number): number | undefined {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

export function fdSum(pids: number[]): number | undefined {
  let sum = 0;
  for (const pid of pids) {
    const n = fdCount(pid);
    if (n === undefined) return undefined;
    sum += n;
  }
  return pids.length ? sum : undefined;
}
