// npm run bench  (node dist/benchmarks/bench.js [flags])
//
// Runs the backend directly, through the Skiff router, through nginx and
// through HAProxy, side by side, round by round, and prints one table of
// medians. See benchmarks/README.md.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ALL_CASES, BenchCase, CASES, CaseName, preflight } from './cases';
import { ALL_CONTENDERS, Contender, ContenderName, directContender } from './contender';
import { busyShare, cpuSnapshot, systemCpu } from './cpu';
import type { Loader, LoaderName, Measurement } from './loader';
import { autocannonLoader } from './loader-autocannon';
import { wrkLoader } from './loader-wrk';
import { NotInstalled, startHaproxy, startNginx } from './peers';
import { freePort, installCleanupHandlers, Managed, sleep, startProcess, stopAll, stopProcess, waitForPort } from './procs';
import { machineInfo, median, peerVersions, renderTable, TableRow, writeResults } from './report';
import { startSkiff } from './skiff';

const USAGE = `usage: node dist/benchmarks/bench.js [flags]
  --duration S        seconds per measurement (default 5)
  --rounds N          rounds; contenders alternate within each round (default 3)
  --warmup S          warm-up seconds per contender per round (default 1)
  --cases LIST        small,64k,upload (default all)
  --contenders LIST   direct,skiff,nginx,haproxy (default all; direct is always run)
  --loader NAME       autocannon (default) or wrk
  --wrk-threads N     wrk threads (default 2)
  --quick             smoke run: 1 round of 2 s (not saved unless --save)
  --save / --no-save  write benchmarks/results/<date>.json or not (default: save, except --quick)
  --help`;

interface Settings {
  durationS: number;
  rounds: number;
  warmupS: number;
  cases: CaseName[];
  contenders: ContenderName[];
  loader: LoaderName;
  wrkThreads: number;
  quick: boolean;
  save: boolean;
}

class UsageError extends Error {}

function parseList<T extends string>(raw: string | undefined, all: readonly T[], flag: string): T[] {
  if (!raw) throw new UsageError(`${flag} needs a value`);
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const it of items) if (!all.includes(it as T)) throw new UsageError(`${flag}: unknown "${it}" (choose from ${all.join(',')})`);
  // Keep the canonical order, drop duplicates.
  return all.filter((a) => items.includes(a));
}

function parsePositive(raw: string | undefined, flag: string, integer: boolean): number {
  const n = Number(raw);
  if (raw === undefined || raw === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag} needs a positive ${integer ? 'integer' : 'number'}`);
  }
  return n;
}

export function parseArgs(argv: string[]): Settings {
  let quick = false;
  let durationS: number | undefined;
  let rounds: number | undefined;
  let warmupS = 1;
  let cases = [...ALL_CASES];
  let contenders = [...ALL_CONTENDERS];
  let loader: LoaderName = 'autocannon';
  let wrkThreads = 2;
  let save: boolean | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => (inline !== undefined ? inline : argv[++i]);
    switch (flag) {
      case '--quick': quick = true; break;
      case '--duration': durationS = parsePositive(value(), flag, true); break;
      case '--rounds': rounds = parsePositive(value(), flag, true); break;
      case '--warmup': warmupS = parsePositive(value(), flag, true); break;
      case '--cases': cases = parseList(value(), ALL_CASES, flag); break;
      case '--contenders': contenders = parseList(value(), ALL_CONTENDERS, flag); break;
      case '--loader': {
        const v = value();
        if (v !== 'autocannon' && v !== 'wrk') throw new UsageError('--loader must be autocannon or wrk');
        loader = v;
        break;
      }
      case '--wrk-threads': wrkThreads = parsePositive(value(), flag, true); break;
      case '--no-save': save = false; break;
      case '--save': save = true; break;
      case '--help': case '-h': throw new UsageError('');
      default: throw new UsageError(`unknown argument "${a}"`);
    }
  }
  if (cases.length === 0) throw new UsageError('--cases: nothing selected');
  // Ratios need the direct numbers of the same round.
  if (!contenders.includes('direct')) contenders = ['direct', ...contenders];
  return {
    durationS: durationS ?? (quick ? 2 : 5),
    rounds: rounds ?? (quick ? 1 : 3),
    warmupS,
    cases,
    contenders,
    loader,
    wrkThreads,
    quick,
    save: save ?? !quick,
  };
}

type ContenderState =
  | { status: 'ok'; c: Contender }
  | { status: 'skipped'; note: string }
  | { status: 'failed'; note: string; c?: Contender };

interface RoundRecord {
  round: number;
  case: CaseName;
  contender: ContenderName;
  ok: boolean;
  error?: string;
  measurement?: Measurement;
  proxyPids?: number[];
  proxyCpuS?: number;
  proxyCpuSPer10k?: number;
  backendCpuS?: number;
  systemBusyShare?: number;
  /** 1-minute load average when the measurement ended (others' work shows here). */
  loadAvg1?: number;
  ratioToDirect?: number;
  ratioToNginx?: number;
}

let removeTmp = (): void => {};

const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};

async function startContender(name: ContenderName, backendPort: number, tmpDir: string): Promise<Contender> {
  switch (name) {
    case 'direct': return directContender(backendPort);
    case 'skiff': return startSkiff(backendPort);
    case 'nginx': return startNginx(tmpDir, backendPort);
    case 'haproxy': return startHaproxy(tmpDir, backendPort);
  }
}

async function measureOnce(loader: Loader, c: Contender, bc: BenchCase, s: Settings, backend: Managed, rec: RoundRecord): Promise<void> {
  // Warm-up: same load, result discarded.
  await loader.run({ port: c.port, benchCase: bc, durationS: s.warmupS });
  const pids = c.proxyPids();
  const cpu0 = cpuSnapshot(pids);
  const b0 = cpuSnapshot([backend.pid]);
  const sys0 = systemCpu();
  const m = await loader.run({ port: c.port, benchCase: bc, durationS: s.durationS });
  const sys1 = systemCpu();
  const b1 = cpuSnapshot([backend.pid]);
  const cpu1 = cpuSnapshot(pids);
  rec.measurement = m;
  rec.ok = true;
  rec.backendCpuS = b1.seconds - b0.seconds;
  rec.systemBusyShare = busyShare(sys0, sys1);
  rec.loadAvg1 = os.loadavg()[0];
  if (pids.length > 0) {
    rec.proxyPids = pids;
    if (cpu1.missing.length === 0) {
      rec.proxyCpuS = cpu1.seconds - cpu0.seconds;
      if (m.requests > 0) rec.proxyCpuSPer10k = (rec.proxyCpuS / m.requests) * 10000;
    }
  }
}

async function main(): Promise<number> {
  let s: Settings;
  try {
    s = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      if (err.message) log(`bench: ${err.message}`);
      log(USAGE);
      return err.message ? 2 : 0;
    }
    throw err;
  }

  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-bench-'));
  removeTmp = (): void => {
    try {
      fs.rmSync(tmpDir, { recursive: true, force: true });
    } catch {
      /* ignore */
    }
  };
  installCleanupHandlers(async () => removeTmp());

  const loader = s.loader === 'wrk' ? wrkLoader(path.join(tmpDir, 'wrk'), s.wrkThreads) : autocannonLoader();
  if (!loader) {
    log('bench: --loader wrk: wrk is not installed');
    removeTmp();
    return 2;
  }

  const started = new Date();
  const loadAtStart = os.loadavg();
  const machine = machineInfo();
  const peers = peerVersions();
  const caseDefs = s.cases.map((n) => CASES[n]);

  // Backend.
  const backendPort = await freePort();
  const backendJs = path.join(__dirname, 'backend.js');
  const backend = startProcess({ name: 'backend', cmd: process.execPath, args: [backendJs, '--port', String(backendPort)], stdinPipe: true });
  await waitForPort(backend, backendPort);
  for (const bc of caseDefs) await preflight(backendPort, bc);

  // Contenders.
  const states = new Map<ContenderName, ContenderState>();
  for (const name of s.contenders) {
    try {
      const c = await startContender(name, backendPort, tmpDir);
      try {
        for (const bc of caseDefs) await preflight(c.port, bc);
        states.set(name, { status: 'ok', c });
        log(`bench: ${name} ready on 127.0.0.1:${c.port}`);
      } catch (err) {
        states.set(name, { status: 'failed', note: `preflight: ${(err as Error).message}`, c });
        await c.stop();
      }
    } catch (err) {
      if (err instanceof NotInstalled) states.set(name, { status: 'skipped', note: err.message });
      else states.set(name, { status: 'failed', note: (err as Error).message });
    }
    const st = states.get(name);
    if (st && st.status !== 'ok') log(`bench: ${name}: ${st.note}`);
  }
  if (states.get('direct')?.status !== 'ok') throw new Error('the backend does not answer directly');

  // Whole run bounded in time (each loader run also has its own backstop).
  const active = [...states.values()].filter((x) => x.status === 'ok').length;
  const budgetS = 120 + s.rounds * caseDefs.length * active * (s.warmupS + s.durationS + 65);
  const watchdog = setTimeout(() => {
    log(`bench: run exceeded its ${budgetS} s budget; aborting`);
    process.kill(process.pid, 'SIGTERM');
  }, budgetS * 1000);

  const records: RoundRecord[] = [];
  log(`bench: ${s.rounds} round(s) x ${caseDefs.length} case(s) x ${active} contender(s), ${s.warmupS} s warm-up + ${s.durationS} s each, loader ${loader.name}`);
  for (let round = 1; round <= s.rounds; round++) {
    for (const bc of caseDefs) {
      for (const name of s.contenders) {
        const st = states.get(name);
        if (!st || st.status !== 'ok') continue;
        const c = st.c;
        const rec: RoundRecord = { round, case: bc.name, contender: name, ok: false };
        records.push(rec);
        if (c.main?.exited) {
          rec.error = `${c.main.name} exited (${c.main.exitInfo}): ${c.main.tail.slice(-3).join(' | ')}`;
          states.set(name, { status: 'failed', note: rec.error, c });
          log(`bench: ${name}: ${rec.error}`);
          continue;
        }
        try {
          await measureOnce(loader, c, bc, s, backend, rec);
          const m = rec.measurement as Measurement;
          log(
            `  round ${round}/${s.rounds}  ${bc.name.padEnd(6)} ${name.padEnd(8)} ${Math.round(m.rps).toString().padStart(7)} req/s` +
              `  p50 ${m.p50ms.toFixed(2)} ms  p99 ${m.p99ms.toFixed(2)} ms` +
              (rec.proxyCpuSPer10k !== undefined ? `  cpu ${rec.proxyCpuSPer10k.toFixed(3)} s/10k` : '') +
              (m.non2xx + m.errors > 0 ? `  non2xx ${m.non2xx} errors ${m.errors}` : ''),
          );
        } catch (err) {
          rec.error = (err as Error).message;
          log(`  round ${round}/${s.rounds}  ${bc.name.padEnd(6)} ${name.padEnd(8)} FAILED: ${rec.error}`);
        }
        if (backend.exited) throw new Error(`backend exited (${backend.exitInfo}): ${backend.tail.slice(-3).join(' | ')}`);
        await sleep(200);
      }
    }
  }
  clearTimeout(watchdog);

  // Ratios within each round, then medians across rounds.
  const find = (round: number, cn: CaseName, who: ContenderName): RoundRecord | undefined =>
    records.find((r) => r.round === round && r.case === cn && r.contender === who && r.ok);
  for (const r of records) {
    if (!r.ok || !r.measurement) continue;
    const d = find(r.round, r.case, 'direct')?.measurement;
    const n = find(r.round, r.case, 'nginx')?.measurement;
    if (d && d.rps > 0) r.ratioToDirect = r.measurement.rps / d.rps;
    if (n && n.rps > 0) r.ratioToNginx = r.measurement.rps / n.rps;
  }

  const rows: TableRow[] = [];
  for (const bc of caseDefs) {
    for (const name of s.contenders) {
      const st = states.get(name);
      const recs = records.filter((r) => r.case === bc.name && r.contender === name);
      const ok = recs.filter((r) => r.ok && r.measurement);
      const ms = ok.map((r) => r.measurement as Measurement);
      const notes: string[] = [];
      if (st && st.status !== 'ok' && recs.length === 0) notes.push(st.note);
      const failedRounds = recs.length - ok.length;
      if (failedRounds > 0) notes.push(`${failedRounds}/${recs.length} rounds failed: ${recs.find((r) => !r.ok)?.error ?? ''}`);
      const sum = (f: (m: Measurement) => number): number | undefined => (ms.length ? ms.reduce((a, m) => a + f(m), 0) : undefined);
      rows.push({
        case: bc.name,
        contender: name,
        rps: median(ms.map((m) => m.rps)),
        p50ms: median(ms.map((m) => m.p50ms)),
        p99ms: median(ms.map((m) => m.p99ms)),
        ratioDirect: median(ok.flatMap((r) => (r.ratioToDirect === undefined ? [] : [r.ratioToDirect]))),
        ratioNginx: median(ok.flatMap((r) => (r.ratioToNginx === undefined ? [] : [r.ratioToNginx]))),
        cpuPer10k: median(ok.flatMap((r) => (r.proxyCpuSPer10k === undefined ? [] : [r.proxyCpuSPer10k]))),
        non2xx: sum((m) => m.non2xx),
        errors: sum((m) => m.errors),
        ...(notes.length ? { note: notes.join('; ') } : {}),
      });
    }
  }

  const peerLine = [
    peers.nginx ? peers.nginx.replace(/^nginx version:\s*/, '') : 'nginx: not installed',
    peers.haproxy ? peers.haproxy.replace(/^HAProxy version (\S+).*$/, 'HAProxy $1') : 'HAProxy: not installed',
    peers.natsServer ?? 'nats-server: not installed',
  ].join(', ');
  const title = [
    `Skiff router benchmark, ${started.toISOString()}`,
    `machine: ${machine.hostname}, ${machine.cpuModel} x ${machine.cpuCount}, ${(machine.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, Linux ${machine.kernel}; load average at start ${loadAtStart.map((x) => x.toFixed(2)).join(' ')}`,
    `Node ${process.version}; loader ${loader.name} ${loader.version}${s.loader === 'wrk' ? ` (${s.wrkThreads} threads)` : ''}; peers: ${peerLine}`,
    `${s.rounds} round(s) x ${s.durationS} s (+${s.warmupS} s warm-up), medians across rounds; ratios are req/s ratios taken within a round; ` +
      `connections: ${caseDefs.map((c) => `${c.name} ${c.connections}`).join(', ')}; CPU = proxy utime+stime per 10k requests`,
  ];
  const table = renderTable(title, rows);
  process.stdout.write(`\n${table}\n\n`);

  const results = {
    date: started.toISOString(),
    finished: new Date().toISOString(),
    machine,
    loadAverageAtStart: loadAtStart,
    node: process.version,
    loader: { name: loader.name, version: loader.version },
    peers,
    settings: {
      durationS: s.durationS,
      warmupS: s.warmupS,
      rounds: s.rounds,
      quick: s.quick,
      ...(s.loader === 'wrk' ? { wrkThreads: s.wrkThreads } : {}),
      contenders: s.contenders,
      order: 'for each round: for each case: contenders in the listed order',
      host: 'bench.localhost',
      cases: caseDefs.map((c) => ({ name: c.name, method: c.method, path: c.path, connections: c.connections, requestBodyBytes: c.bodyBytes, responseBodyBytes: c.expectBytes })),
    },
    contenders: Object.fromEntries(
      [...states.entries()].map(([n, st]) => [n, st.status === 'ok' ? { status: 'ok', port: st.c.port } : { status: st.status, note: st.note }]),
    ),
    rounds: records,
    medians: rows,
    table,
  };
  if (s.save) {
    const dir = path.resolve(__dirname, '..', '..', 'benchmarks', 'results');
    const file = writeResults(dir, results, started);
    log(`bench: results written to ${path.relative(process.cwd(), file) || file}`);
  }

  // Stop everything we started, by pid.
  for (const st of states.values()) if (st.status !== 'skipped' && st.c) await st.c.stop();
  await stopProcess(backend);
  await stopAll();
  removeTmp();

  const failed = [...states.entries()].filter(([, st]) => st.status === 'failed');
  for (const [n, st] of failed) if (st.status === 'failed') log(`bench: contender ${n} failed: ${st.note}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`bench: ${err instanceof Error ? err.message : String(err)}`);
    void stopAll().finally(() => {
      removeTmp();
      process.exit(1);
    });
  },
);
