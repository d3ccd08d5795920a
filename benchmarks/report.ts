// Environment description, medians, the printed table and the JSON results file.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { toolVersion, which } from './procs';

export interface MachineInfo {
  hostname: string;
  cpuModel: string;
  cpuCount: number;
  totalMemoryBytes: number;
  kernel: string;
  kernelVersion: string;
  platform: string;
  arch: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    cpuModel: (cpus[0]?.model ?? 'unknown').trim(),
    cpuCount: cpus.length,
    totalMemoryBytes: os.totalmem(),
    kernel: os.release(),
    kernelVersion: os.version(),
    platform: os.platform(),
    arch: os.arch(),
  };
}

export interface PeerVersions {
  nginx?: string;
  haproxy?: string;
  caddy?: string;
  natsServer?: string;
}

export function peerVersions(): PeerVersions {
  const v = (cmd: string, args: string[]): string | undefined => {
    const bin = which(cmd);
    return bin ? toolVersion(bin, args) : undefined;
  };
  return {
    nginx: v('nginx', ['-v']),
    haproxy: v('haproxy', ['-v']),
    caddy: v('caddy', ['version']),
    natsServer: v('nats-server', ['--version']),
  };
}

export function median(xs: number[]): number | undefined {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

export interface TableRow {
  case: string;
  contender: string;
  /** Threads or workers of the proxy (undefined: the backend directly). */
  threads?: number;
  rps?: number;
  p50ms?: number;
  p99ms?: number;
  ratioDirect?: number;
  ratioNginx?: number;
  /** Against the faster of nginx and HAProxy with the same thread count. */
  ratioBest?: number;
  ratioCaddy?: number;
  cpuPer10k?: number;
  non2xx?: number;
  errors?: number;
  note?: string;
}

const fmt = (x: number | undefined, digits: number): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));
const fmtInt = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : Math.round(x).toLocaleString('en-US'));

export function renderTable(title: string[], rows: TableRow[]): string {
  const head = ['case', 'contender', 'thr', 'req/s', 'p50 ms', 'p99 ms', 'x direct', 'x best', 'x nginx', 'x caddy', 'CPU s/10k', 'non2xx/err', 'note'];
  const body = rows.map((r) => [
    r.case,
    r.contender,
    r.threads === undefined ? '-' : String(r.threads),
    fmtInt(r.rps),
    fmt(r.p50ms, 2),
    fmt(r.p99ms, 2),
    fmt(r.ratioDirect, 2),
    fmt(r.ratioBest, 2),
    fmt(r.ratioNginx, 2),
    fmt(r.ratioCaddy, 2),
    fmt(r.cpuPer10k, 3),
    r.non2xx === undefined && r.errors === undefined ? '-' : `${r.non2xx ?? 0}/${r.errors ?? 0}`,
    r.note ?? '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const numeric = new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  const out = [...title, '', line(head), sep];
  let lastCase = '';
  for (let i = 0; i < body.length; i++) {
    const b = body[i] as string[];
    if (lastCase && b[0] !== lastCase) out.push('');
    lastCase = b[0] ?? '';
    out.push(line(b));
  }
  return out.join('\n');
}

/**
 * The router's rows against the targets of the router-speed issue (same-run
 * ratios): small >= 1.0x the faster of nginx and HAProxy, with p99 at most
 * nginx's; 64 KiB >= 1.0x; every case ahead of Caddy. One line per router row.
 */
export function renderTargets(rows: TableRow[]): string {
  const get = (c: string, who: string): TableRow | undefined => rows.find((r) => r.case === c && r.contender === who);
  const mark = (ok: boolean | undefined): string => (ok === undefined ? 'n/a' : ok ? 'met' : 'NOT met');
  const out = ['targets (same-run ratios against the peers with the same thread count):'];
  for (const [skiff, nginx] of [['skiff', 'nginx'], ['skiff-t2', 'nginx-w2']] as const) {
    if (!rows.some((r) => r.contender === skiff && r.rps !== undefined)) continue;
    const small = get('small', skiff);
    const n = get('small', nginx);
    const big = get('64k', skiff);
    const parts: string[] = [];
    if (small?.ratioBest !== undefined) parts.push(`small ${small.ratioBest.toFixed(2)}x best (>= 1.00: ${mark(small.ratioBest >= 1)})`);
    if (small?.p99ms !== undefined && n?.p99ms !== undefined)
      parts.push(`small p99 ${small.p99ms.toFixed(2)} ms vs nginx ${n.p99ms.toFixed(2)} ms (${mark(small.p99ms <= n.p99ms)})`);
    if (big?.ratioBest !== undefined) parts.push(`64k ${big.ratioBest.toFixed(2)}x best (${mark(big.ratioBest >= 1)})`);
    const caddy = rows.filter((r) => r.contender === skiff && r.ratioCaddy !== undefined);
    if (caddy.length > 0)
      parts.push(
        `vs Caddy ${caddy.map((r) => `${r.case} ${r.ratioCaddy!.toFixed(2)}x`).join(', ')} (${mark(caddy.every((r) => r.ratioCaddy! > 1))})`,
      );
    out.push(`  ${skiff.padEnd(8)} ${parts.length > 0 ? parts.join('; ') : 'no peers measured'}`);
  }
  return out.join('\n');
}

export interface IdleRow {
  contender: string;
  connections?: number;
  opened?: number;
  openS?: number;
  rssBeforeMiB?: number;
  rssAfterMiB?: number;
  kbPerConnection?: number;
  rssAfterCloseMiB?: number;
  backendKbPerConnection?: number;
  probe?: string;
  errors?: number;
  note?: string;
}

/** The ws-idle table: proxy memory held by idle WebSockets (medians across rounds). */
export function renderIdleTable(title: string[], rows: IdleRow[]): string {
  const head = ['case', 'contender', 'open', 'open s', 'RSS before MiB', 'RSS after MiB', 'KiB/conn', 'after close MiB', 'backend KiB/conn', 'echo probe', 'err', 'note'];
  const body = rows.map((r) => [
    'ws-idle',
    r.contender,
    r.opened === undefined ? '-' : `${fmtInt(r.opened)}${r.connections !== undefined && r.opened !== r.connections ? `/${fmtInt(r.connections)}` : ''}`,
    fmt(r.openS, 1),
    fmt(r.rssBeforeMiB, 1),
    fmt(r.rssAfterMiB, 1),
    fmt(r.kbPerConnection, 2),
    fmt(r.rssAfterCloseMiB, 1),
    fmt(r.backendKbPerConnection, 2),
    r.probe ?? '-',
    r.errors === undefined ? '-' : String(r.errors),
    r.note ?? '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const numeric = new Set([2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [...title, '', line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** benchmarks/results/<YYYY-MM-DD>.json, or with the time of day when that file exists. Atomic write. */
export function writeResults(dir: string, data: unknown, now = new Date()): string {
  fs.mkdirSync(dir, { recursive: true });
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const day = `${now.getFullYear()}-${p2(now.getMonth() + 1)}-${p2(now.getDate())}`;
  let file = path.join(dir, `${day}.json`);
  if (fs.existsSync(file)) {
    const tod = `${p2(now.getHours())}${p2(now.getMinutes())}${p2(now.getSeconds())}`;
    file = path.join(dir, `${day}-${tod}.json`);
    for (let i = 2; fs.existsSync(file); i++) file = path.join(dir, `${day}-${tod}-${i}.json`);
  }
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n');
  fs.renameSync(tmp, file);
  return file;
}
