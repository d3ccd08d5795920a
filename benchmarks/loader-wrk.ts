// wrk (C, multi-threaded) as the loader, with a Lua script per case that
// sets the upload body and prints the summary as one JSON line.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { BENCH_HOST } from './cases';
import type { BenchCase } from './cases';
import type { LoadSpec, Loader, Measurement } from './loader';
import { startProcess, stopProcess, toolVersion, which } from './procs';

const MARK = 'WRKJSON ';

export function wrkLuaScript(c: BenchCase): string {
  const lines = ['-- written by benchmarks/loader-wrk.ts'];
  if (c.method !== 'GET') lines.push(`wrk.method = "${c.method}"`);
  if (c.bodyBytes > 0) {
    lines.push(`wrk.body = string.rep("u", ${c.bodyBytes})`);
    lines.push('wrk.headers["Content-Type"] = "application/octet-stream"');
  }
  lines.push(
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    `  io.write(string.format('${MARK}{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\\n',`,
    '    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,',
    '    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))',
    'end',
  );
  return lines.join('\n') + '\n';
}

interface WrkSummary {
  requests: number;
  duration_us: number;
  bytes: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50_us: number;
  p99_us: number;
  mean_us: number;
  max_us: number;
}

/** undefined when wrk is not installed. */
export function wrkLoader(scriptDir: string, threads = 2): Loader | undefined {
  const bin = which('wrk');
  if (!bin) return undefined;
  const version = toolVersion(bin, ['--version'])?.replace(/\s+Copyright.*$/, '').replace(/^wrk\s+/, '') ?? 'unknown';
  fs.mkdirSync(scriptDir, { recursive: true });
  const scripts = new Map<string, string>();
  const scriptFor = (c: BenchCase): string => {
    let p = scripts.get(c.name);
    if (!p) {
      p = path.join(scriptDir, `wrk-${c.name}.lua`);
      fs.writeFileSync(p, wrkLuaScript(c));
      scripts.set(c.name, p);
    }
    return p;
  };

  async function run(spec: LoadSpec): Promise<Measurement> {
    const c = spec.benchCase;
    const t = Math.max(1, Math.min(threads, c.connections));
    const args = [
      '-t', String(t),
      '-c', String(c.connections),
      '-d', `${spec.durationS}s`,
      '--timeout', '10s',
      '-H', `Host: ${BENCH_HOST}`,
      '-s', scriptFor(c),
      `http://127.0.0.1:${spec.port}${c.path}`,
    ];
    const m = startProcess({ name: 'wrk', cmd: bin!, args });
    let out = '';
    m.child.stdout?.on('data', (d: Buffer) => {
      out += d.toString('utf8');
    });
    // Bounded: wrk stops after -d; this is the backstop.
    const guard = setTimeout(() => void stopProcess(m, 1000), (spec.durationS + 30) * 1000);
    await m.exitPromise;
    clearTimeout(guard);
    const line = out.split('\n').find((l) => l.startsWith(MARK));
    if (!line) throw new Error(`wrk failed (${m.exitInfo}): ${m.tail.slice(-4).join(' | ')}`);
    const s = JSON.parse(line.slice(MARK.length)) as WrkSummary;
    const durationS = s.duration_us / 1e6;
    return {
      requests: s.requests,
      durationS,
      rps: durationS > 0 ? s.requests / durationS : 0,
      p50ms: s.p50_us / 1000,
      p99ms: s.p99_us / 1000,
      non2xx: s.status,
      errors: s.connect + s.read + s.write + s.timeout,
      detail: { wrk: { threads: t, ...s } },
    };
  }

  return { name: 'wrk', version, run };
}
