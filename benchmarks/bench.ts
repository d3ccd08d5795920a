// npm run bench  (node dist/benchmarks/bench.js [flags])
//
// Runs the backend directly, through the Skiff router, nginx, HAProxy and
// Caddy (with one thread or worker each, and with two), side by side, round
// by round, and prints one table of medians. See benchmarks/README.md.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ALL_CASES, AnyCase, BenchCase, caseDef, CaseName, DEFAULT_CASES, preflight, WsEchoCase, WsIdleCase, wsPreflight } from './cases';
import { ALL_CONTENDERS, Contender, ContenderName, directContender, peerOf, threadsOf } from './contender';
import { busyShare, cpuSnapshot, systemCpu } from './cpu';
import type { Loader, LoaderName, Measurement } from './loader';
import { autocannonLoader } from './loader-autocannon';
import { wrkLoader } from './loader-wrk';
import { WsEchoSession } from './loader-ws';
import { fdCount, fdSum } from './mem';
import { NotInstalled, startCaddy, startHaproxy, startNginx } from './peers';
import { ensureNofile, freePort, installCleanupHandlers, Managed, nofileLimit, sleep, startProcess, stopAll, stopProcess, waitForPort } from './procs';
import { IdleRow, machineInfo, median, peerVersions, renderIdleTable, renderTable, renderTargets, TableRow, writeResults } from './report';
import { startSkiff } from './skiff';
import { IdleMeasurement, measureIdle } from './ws-idle';

const USAGE = `usage: node dist/benchmarks/bench.js [flags]
  --duration S        seconds per measurement (default 5)
  --rounds N          rounds; contenders alternate within each round (default 3)
  --warmup S          warm-up seconds per contender per round (default 1)
  --cases LIST        small,64k,upload,ws-echo,ws-idle (default small,64k,upload,ws-echo)
  --scale             add ws-idle (N idle WebSockets through skiff, and nginx if selected)
  --idle-connections N  WebSockets held open by ws-idle (default 10000)
  --contenders LIST   direct,skiff,nginx,haproxy,caddy,skiff-t2,nginx-w2,haproxy-t2,caddy-t2
                      (default all; direct is always run; the -t2/-w2 ones use two threads
                      or workers: the router with --threads 2, nginx with 2 workers,
                      HAProxy with nbthread 2, Caddy with GOMAXPROCS=2)
  --loader NAME       HTTP cases: autocannon (default) or wrk
  --wrk-threads N     wrk threads (default 2)
  --ws-threads N      ws-echo load generator threads (default: 1 per 4 cores, at least 1, at most 4)
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
  wsThreads: number;
  idleConnections: number;
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

/**
 * One load-generator thread per 4 cores. On 2 cores one thread is best: a
 * second one competes with the backend and the proxy for the same cores
 * (measured: direct ws-echo 83-102k msg/s with 2 threads, 131-138k with 1).
 */
function defaultWsThreads(): number {
  return Math.max(1, Math.min(4, Math.floor(os.cpus().length / 4)));
}

export function parseArgs(argv: string[]): Settings {
  let quick = false;
  let durationS: number | undefined;
  let rounds: number | undefined;
  let warmupS = 1;
  let cases = [...DEFAULT_CASES];
  let scale = false;
  let contenders = [...ALL_CONTENDERS];
  let loader: LoaderName = 'autocannon';
  let wrkThreads = 2;
  let wsThreads: number | undefined;
  let idleConnections = 10000;
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
      case '--scale': scale = true; break;
      case '--idle-connections': idleConnections = parsePositive(value(), flag, true); break;
      case '--ws-threads': wsThreads = parsePositive(value(), flag, true); break;
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
  if (scale && !cases.includes('ws-idle')) cases = ALL_CASES.filter((c) => c === 'ws-idle' || cases.includes(c));
  if (cases.length === 0) throw new UsageError('--cases: nothing selected');
  if (cases.includes('ws-idle') && !contenders.includes('skiff') && !contenders.includes('nginx')) {
    throw new UsageError('ws-idle measures skiff and/or nginx: name one in --contenders');
  }
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
    wsThreads: wsThreads ?? defaultWsThreads(),
    idleConnections,
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
  /** To nginx with the same number of threads/workers, in the same round. */
  ratioToNginx?: number;
  /** To the faster of nginx and HAProxy with the same number of threads, in the same round. */
  ratioToBest?: number;
  /** To Caddy with the same GOMAXPROCS, in the same round. */
  ratioToCaddy?: number;
  /** ws-echo: busiest load-generator thread's event-loop utilization (near 1: the loader may be the ceiling). */
  loaderEluMax?: number;
}

/** One ws-idle measurement (a fresh proxy instance per round). */
interface IdleRecord {
  round: number;
  case: 'ws-idle';
  contender: ContenderName;
  ok: boolean;
  /** The contender answered, but not with WebSockets. */
  unsupported?: string;
  error?: string;
  /** Descriptor limits checked or raised (per process, nothing system-wide). */
  limits?: string[];
  /** Connections asked for, after any cap. */
  connections?: number;
  capNote?: string;
  measurement?: IdleMeasurement;
}

let removeTmp = (): void => {};

/** Connections one backend port takes from a proxy (the loopback source-port range is 28k). */
const BACKEND_PORT_CONNECTIONS = 20_000;

const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};

async function startContender(name: ContenderName, backendPort: number, tmpDir: string): Promise<Contender> {
  switch (name) {
    case 'direct': return directContender(backendPort);
    case 'skiff': return startSkiff(backendPort);
    case 'skiff-t2': return { ...(await startSkiff(backendPort, ['--threads', '2'])), name: 'skiff-t2' };
    case 'nginx': return startNginx(tmpDir, backendPort);
    case 'nginx-w2': return startNginx(tmpDir, backendPort, { workers: 2 });
    case 'haproxy': return startHaproxy(tmpDir, backendPort);
    case 'haproxy-t2': return startHaproxy(tmpDir, backendPort, 2);
    case 'caddy': return startCaddy(tmpDir, backendPort, 1);
    case 'caddy-t2': return startCaddy(tmpDir, backendPort, 2);
  }
}

/** Runs `measure` with proxy, backend and machine CPU read around it, into rec. */
async function measureAround(c: Contender, backend: Managed, rec: RoundRecord, measure: () => Promise<Measurement>): Promise<void> {
  const pids = c.proxyPids();
  const cpu0 = cpuSnapshot(pids);
  const b0 = cpuSnapshot([backend.pid]);
  const sys0 = systemCpu();
  const m = await measure();
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
      const ops = m.cpuOps ?? m.requests;
      if (ops > 0) rec.proxyCpuSPer10k = (rec.proxyCpuS / ops) * 10000;
    }
  }
}

async function measureOnce(loader: Loader, c: Contender, bc: BenchCase, s: Settings, backend: Managed, rec: RoundRecord): Promise<void> {
  // Warm-up: same load, result discarded.
  await loader.run({ port: c.port, benchCase: bc, durationS: s.warmupS });
  await measureAround(c, backend, rec, () => loader.run({ port: c.port, benchCase: bc, durationS: s.durationS }));
}

/** ws-echo: open the WebSockets once, warm up on them, measure on them, close them. */
async function measureEcho(c: Contender, bc: WsEchoCase, s: Settings, backend: Managed, rec: RoundRecord): Promise<void> {
  const session = await WsEchoSession.open({ port: c.port, path: bc.path, connections: bc.connections, messageBytes: bc.messageBytes, threads: s.wsThreads });
  try {
    await session.run(s.warmupS);
    await measureAround(c, backend, rec, () => session.run(s.durationS));
    const elu = (rec.measurement?.detail.loaderThreadElu as number[] | undefined) ?? [];
    if (elu.length) rec.loaderEluMax = Math.max(...elu);
  } finally {
    await session.close();
  }
}

/** The note for a contender that does not carry WebSockets. */
const noWsNote = (msg: string): string => `no WebSocket through it: ${msg}`;

interface IdleContext {
  s: Settings;
  backend: Managed;
  backendPort: number;
  /** Further ports of the same backend (one port gives a proxy only ~28k source ports towards it). */
  backendExtraPorts: number[];
  tmpDir: string;
}

/**
 * ws-idle for one contender: a fresh instance (so that "before" is a proxy
 * that has held nothing yet), a WebSocket check, the measurement, stop.
 * Descriptors: the harness and the backend hold one per connection, the
 * proxy two (client side and upstream). A soft limit below the hard one is
 * raised for that process alone (prlimit --pid; nginx: worker_rlimit_nofile);
 * nothing system-wide. When the count still does not fit (a hard limit of
 * 20000 cannot hold 2 x 10,000 sockets plus the proxy's own), it is capped
 * to what fits and the row says so.
 */
async function runIdleOnce(round: number, name: ContenderName, bc: WsIdleCase, ctx: IdleContext): Promise<IdleRecord> {
  const { s, backend } = ctx;
  const rec: IdleRecord = { round, case: 'ws-idle', contender: name, ok: false };
  const limits: string[] = [];
  const asked = s.idleConnections;
  const margin = 64;
  const self = ensureNofile(process.pid, asked + (fdCount(process.pid) ?? 0) + margin);
  limits.push(`harness: ${self.detail}`);
  const be = ensureNofile(backend.pid, asked + (fdCount(backend.pid) ?? 0) + margin);
  limits.push(`backend: ${be.detail}`);
  let c: Contender | undefined;
  try {
    let proxySoft = Number.MAX_SAFE_INTEGER;
    if (name === 'skiff') {
      // An open WebSocket holds one of the router's concurrent connections to
      // its app instance (--max-conns-per-backend, 500 by default; beyond: 503).
      const routerArgs = ['--max-conns-per-backend', String(asked + 100)];
      limits.push(`router flags: ${routerArgs.join(' ')}`);
      c = await startSkiff(ctx.backendPort, routerArgs, ctx.backendExtraPorts);
      if (c.main) {
        const r = ensureNofile(c.main.pid, 2 * asked + (fdSum(c.proxyPids()) ?? 0) + margin);
        limits.push(`router: ${r.detail}`);
        proxySoft = r.soft;
      }
    } else if (name === 'nginx') {
      // nginx raises its worker's soft limit itself, up to the hard limit it inherits from us.
      const hard = nofileLimit(process.pid)?.hard ?? 2 * asked + 2048;
      const nofile = Math.min(2 * asked + 2048, hard);
      c = await startNginx(ctx.tmpDir, ctx.backendPort, { dirName: `nginx-idle-${round}`, workerConnections: nofile, workerRlimitNofile: nofile, proxyTimeoutS: 3600, extraBackendPorts: ctx.backendExtraPorts });
      const w = c.proxyPids()[0];
      proxySoft = (w !== undefined ? nofileLimit(w)?.soft : undefined) ?? nofile;
      limits.push(`nginx worker: worker_rlimit_nofile ${nofile}, worker_connections ${nofile}; worker soft limit ${proxySoft}`);
    } else {
      throw new Error(`ws-idle does not measure ${name}`);
    }
    try {
      await wsPreflight(c.port, bc.path);
    } catch (err) {
      rec.unsupported = noWsNote((err as Error).message);
      return rec;
    }
    const proxyFds = fdSum(c.proxyPids()) ?? 0;
    // nginx starts closing connections that wait for a request (new ones
    // included) once fewer than 1/16 of worker_connections are free.
    const proxyRoom = name === 'nginx' ? Math.floor((proxySoft * 15) / 16) : proxySoft;
    const fit = Math.min(
      self.soft - (fdCount(process.pid) ?? 0) - margin,
      be.soft - (fdCount(backend.pid) ?? 0) - margin,
      Math.floor((proxyRoom - proxyFds - margin) / 2),
    );
    let want = asked;
    if (fit < asked) {
      want = Math.max(fit, 0);
      rec.capNote =
        `${want} of ${asked}: ${name === 'skiff' ? 'the router' : 'the nginx worker'} may open ${proxySoft} descriptors (2 per WebSocket` +
        `${name === 'nginx' ? ', and nginx keeps 1/16 of worker_connections free' : ''}) and the limit cannot be raised here`;
    }
    rec.connections = want;
    const cc = c;
    const m = await measureIdle({
      port: cc.port,
      path: bc.path,
      connections: want,
      settleS: idleSettleS(s),
      openTimeoutS: IDLE_OPEN_TIMEOUT_S,
      concurrency: IDLE_CONCURRENCY,
      proxyPids: () => cc.proxyPids(),
      backendPid: backend.pid,
      log,
    });
    rec.measurement = m;
    rec.ok = m.opened > 0 && m.kbPerConnection !== undefined;
    if (!rec.ok) rec.error = m.firstError ?? (m.opened === 0 ? 'no WebSocket opened' : 'proxy RSS unreadable');
    if (cc.main?.exited) {
      rec.ok = false;
      rec.error = `${cc.main.name} exited (${cc.main.exitInfo}): ${cc.main.tail.slice(-3).join(' | ')}`;
    }
  } catch (err) {
    rec.error = (err as Error).message;
  } finally {
    rec.limits = limits;
    if (c) await c.stop();
  }
  return rec;
}

const IDLE_OPEN_TIMEOUT_S = 120;
const IDLE_CONCURRENCY = 200;
const idleSettleS = (s: Settings): number => (s.quick ? 2 : 5);

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
  const caseDefs: AnyCase[] = s.cases.map(caseDef);
  const httpCases = caseDefs.filter((c): c is BenchCase => c.kind === 'http');
  const echoCase = caseDefs.find((c): c is WsEchoCase => c.kind === 'ws-echo');
  const idleCase = caseDefs.find((c): c is WsIdleCase => c.kind === 'ws-idle');
  // Cases that alternate the long-running contenders round by round; ws-idle
  // starts a fresh proxy of its own for each measurement.
  const roundCases = caseDefs.filter((c) => c.kind !== 'ws-idle');
  const idleContenders = s.contenders.filter((n) => n === 'skiff' || n === 'nginx');

  // Backend.
  const backendPort = await freePort();
  const backendJs = path.join(__dirname, 'backend.js');
  // Idle runs past one port's source ports (32768-60999 on loopback) need the backend on more ports.
  const backendExtraPorts: number[] = [];
  if (idleCase) for (let n = BACKEND_PORT_CONNECTIONS; n < s.idleConnections; n += BACKEND_PORT_CONNECTIONS) backendExtraPorts.push(await freePort());
  const backendArgs = [backendJs, ...[backendPort, ...backendExtraPorts].flatMap((p) => ['--port', String(p)])];
  const backend = startProcess({ name: 'backend', cmd: process.execPath, args: backendArgs, stdinPipe: true });
  await waitForPort(backend, backendPort);
  for (const bc of httpCases) await preflight(backendPort, bc);
  if (echoCase || idleCase) await wsPreflight(backendPort, (echoCase ?? idleCase)?.path);

  // Contenders (not needed when ws-idle is the only case).
  const states = new Map<ContenderName, ContenderState>();
  /** `${case}/${contender}` -> why that pair is not measured (e.g. no WebSocket support). */
  const caseNotes = new Map<string, string>();
  const noteKey = (cn: CaseName, who: ContenderName): string => `${cn}/${who}`;
  for (const name of roundCases.length > 0 ? s.contenders : (['direct'] as ContenderName[])) {
    try {
      const c = await startContender(name, backendPort, tmpDir);
      try {
        for (const bc of httpCases) await preflight(c.port, bc);
        states.set(name, { status: 'ok', c });
        log(`bench: ${name} ready on 127.0.0.1:${c.port}`);
      } catch (err) {
        states.set(name, { status: 'failed', note: `preflight: ${(err as Error).message}`, c });
        await c.stop();
      }
      // A contender without WebSockets still runs the HTTP cases; its ws rows get a note.
      if (echoCase && states.get(name)?.status === 'ok') {
        try {
          await wsPreflight(c.port, echoCase.path);
        } catch (err) {
          const note = noWsNote((err as Error).message);
          caseNotes.set(noteKey(echoCase.name, name), note);
          log(`bench: ${name}: ws-echo: ${note}`);
        }
      }
    } catch (err) {
      if (err instanceof NotInstalled) states.set(name, { status: 'skipped', note: err.message });
      else states.set(name, { status: 'failed', note: (err as Error).message });
    }
    const st = states.get(name);
    if (st && st.status !== 'ok') log(`bench: ${name}: ${st.note}`);
  }
  if (states.get('direct')?.status !== 'ok') throw new Error('the backend does not answer directly');

  // Whole run bounded in time (each loader run and each ws-idle step also has its own backstop).
  const active = [...states.values()].filter((x) => x.status === 'ok').length;
  const budgetS =
    120 +
    s.rounds * roundCases.length * active * (s.warmupS + s.durationS + 65) +
    (idleCase ? s.rounds * idleContenders.length * (IDLE_OPEN_TIMEOUT_S + 2 * idleSettleS(s) + 90) : 0);
  const watchdog = setTimeout(() => {
    log(`bench: run exceeded its ${budgetS} s budget; aborting`);
    process.kill(process.pid, 'SIGTERM');
  }, budgetS * 1000);

  const records: RoundRecord[] = [];
  const idleRecords: IdleRecord[] = [];
  log(
    `bench: ${s.rounds} round(s) x ${roundCases.length} case(s) x ${active} contender(s), ${s.warmupS} s warm-up + ${s.durationS} s each, ` +
      `loader ${loader.name}${echoCase ? `, ws-echo loader ${s.wsThreads} thread(s)` : ''}` +
      (idleCase ? `; ws-idle: ${s.idleConnections} WebSockets through ${idleContenders.join(', ') || 'nothing (select skiff or nginx)'}` : ''),
  );
  for (let round = 1; round <= s.rounds; round++) {
    for (const bc of caseDefs) {
      if (bc.kind === 'ws-idle') {
        for (const name of idleContenders) {
          const rec = await runIdleOnce(round, name, bc, { s, backend, backendPort, backendExtraPorts, tmpDir });
          idleRecords.push(rec);
          const m = rec.measurement;
          const mib = (x?: number): string => (x === undefined ? '-' : (x / 2 ** 20).toFixed(1));
          if (rec.unsupported) log(`  round ${round}/${s.rounds}  ws-idle ${name.padEnd(8)} ${rec.unsupported}`);
          else if (m)
            log(
              `  round ${round}/${s.rounds}  ws-idle ${name.padEnd(8)} ${m.opened}/${m.connectionsWanted} open in ${m.openS.toFixed(1)} s` +
                `  RSS ${mib(m.proxyRssBeforeBytes)} -> ${mib(m.proxyRssAfterBytes)} MiB (${m.kbPerConnection?.toFixed(2) ?? '-'} KiB/conn), after close ${mib(m.proxyRssAfterCloseBytes)} MiB` +
                `  fds ${m.proxyFdsBefore ?? '-'} -> ${m.proxyFdsAfter ?? '-'}  probe ${m.probe.echoed}/${m.probe.tried}` +
                (m.errors > 0 ? `  errors ${m.errors}: ${m.firstError ?? ''}` : '') +
                (rec.capNote ? `  (${rec.capNote})` : ''),
            );
          if (rec.error) log(`  round ${round}/${s.rounds}  ws-idle ${name.padEnd(8)} FAILED: ${rec.error}`);
          if (backend.exited) throw new Error(`backend exited (${backend.exitInfo}): ${backend.tail.slice(-3).join(' | ')}`);
        }
        continue;
      }
      for (const name of s.contenders) {
        const st = states.get(name);
        if (!st || st.status !== 'ok') continue;
        if (caseNotes.has(noteKey(bc.name, name))) continue;
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
          if (bc.kind === 'http') await measureOnce(loader, c, bc, s, backend, rec);
          else await measureEcho(c, bc, s, backend, rec);
          const m = rec.measurement as Measurement;
          const unit = bc.kind === 'http' ? 'req/s' : 'msg/s';
          log(
            `  round ${round}/${s.rounds}  ${bc.name.padEnd(7)} ${name.padEnd(8)} ${Math.round(m.rps).toString().padStart(7)} ${unit}` +
              `  p50 ${m.p50ms.toFixed(2)} ms  p99 ${m.p99ms.toFixed(2)} ms` +
              (rec.proxyCpuSPer10k !== undefined ? `  cpu ${rec.proxyCpuSPer10k.toFixed(3)} s/10k` : '') +
              (rec.loaderEluMax !== undefined ? `  loader ELU ${rec.loaderEluMax.toFixed(2)}` : '') +
              (bc.kind !== 'http' && rec.systemBusyShare !== undefined ? `  machine ${Math.round(rec.systemBusyShare * 100)}% busy` : '') +
              (m.non2xx + m.errors > 0 ? `  non2xx ${m.non2xx} errors ${m.errors}` : ''),
          );
        } catch (err) {
          rec.error = (err as Error).message;
          log(`  round ${round}/${s.rounds}  ${bc.name.padEnd(7)} ${name.padEnd(8)} FAILED: ${rec.error}`);
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
    if (d && d.rps > 0) r.ratioToDirect = r.measurement.rps / d.rps;
    if (r.contender === 'direct') continue;
    const n = find(r.round, r.case, peerOf(r.contender, 'nginx'))?.measurement;
    const h = find(r.round, r.case, peerOf(r.contender, 'haproxy'))?.measurement;
    const c = find(r.round, r.case, peerOf(r.contender, 'caddy'))?.measurement;
    if (n && n.rps > 0) r.ratioToNginx = r.measurement.rps / n.rps;
    const best = Math.max(n?.rps ?? 0, h?.rps ?? 0);
    if (best > 0) r.ratioToBest = r.measurement.rps / best;
    if (c && c.rps > 0) r.ratioToCaddy = r.measurement.rps / c.rps;
  }

  const rows: TableRow[] = [];
  for (const bc of roundCases) {
    for (const name of s.contenders) {
      const st = states.get(name);
      const recs = records.filter((r) => r.case === bc.name && r.contender === name);
      const ok = recs.filter((r) => r.ok && r.measurement);
      const ms = ok.map((r) => r.measurement as Measurement);
      const notes: string[] = [];
      if (st && st.status !== 'ok' && recs.length === 0) notes.push(st.note);
      const caseNote = caseNotes.get(noteKey(bc.name, name));
      if (caseNote) notes.push(caseNote);
      const failedRounds = recs.length - ok.length;
      if (failedRounds > 0) notes.push(`${failedRounds}/${recs.length} rounds failed: ${recs.find((r) => !r.ok)?.error ?? ''}`);
      const elu = median(ok.flatMap((r) => (r.loaderEluMax === undefined ? [] : [r.loaderEluMax])));
      if (elu !== undefined && elu >= 0.9) {
        const busy = median(ok.flatMap((r) => (r.systemBusyShare === undefined ? [] : [r.systemBusyShare])));
        notes.push(`loader thread ELU ${elu.toFixed(2)}${busy !== undefined ? `, machine ${Math.round(busy * 100)}% busy` : ''}`);
      }
      const sum = (f: (m: Measurement) => number): number | undefined => (ms.length ? ms.reduce((a, m) => a + f(m), 0) : undefined);
      rows.push({
        case: bc.name,
        contender: name,
        threads: name === 'direct' ? undefined : threadsOf(name),
        rps: median(ms.map((m) => m.rps)),
        p50ms: median(ms.map((m) => m.p50ms)),
        p99ms: median(ms.map((m) => m.p99ms)),
        ratioDirect: median(ok.flatMap((r) => (r.ratioToDirect === undefined ? [] : [r.ratioToDirect]))),
        ratioNginx: median(ok.flatMap((r) => (r.ratioToNginx === undefined ? [] : [r.ratioToNginx]))),
        ratioBest: median(ok.flatMap((r) => (r.ratioToBest === undefined ? [] : [r.ratioToBest]))),
        ratioCaddy: median(ok.flatMap((r) => (r.ratioToCaddy === undefined ? [] : [r.ratioToCaddy]))),
        cpuPer10k: median(ok.flatMap((r) => (r.proxyCpuSPer10k === undefined ? [] : [r.proxyCpuSPer10k]))),
        non2xx: sum((m) => m.non2xx),
        errors: sum((m) => m.errors),
        ...(notes.length ? { note: notes.join('; ') } : {}),
      });
    }
  }

  const idleRows: IdleRow[] = [];
  if (idleCase) {
    for (const name of idleContenders) {
      const recs = idleRecords.filter((r) => r.contender === name);
      const ok = recs.filter((r) => r.ok && r.measurement);
      const ms = ok.map((r) => r.measurement as IdleMeasurement);
      const notes: string[] = [];
      const unsupported = recs.find((r) => r.unsupported)?.unsupported;
      if (unsupported) notes.push(unsupported);
      const failed = recs.filter((r) => !r.ok && !r.unsupported);
      if (failed.length > 0) notes.push(`${failed.length}/${recs.length} rounds failed: ${failed[0]?.error ?? ''}`);
      const cap = recs.find((r) => r.capNote)?.capNote;
      if (cap) notes.push(cap);
      const firstError = ms.find((m) => m.firstError)?.firstError;
      if (firstError) notes.push(firstError);
      const mib = (f: (m: IdleMeasurement) => number | undefined): number | undefined => {
        const v = median(ms.flatMap((m) => (f(m) === undefined ? [] : [(f(m) as number) / 2 ** 20])));
        return v;
      };
      const med = (f: (m: IdleMeasurement) => number | undefined): number | undefined => median(ms.flatMap((m) => (f(m) === undefined ? [] : [f(m) as number])));
      idleRows.push({
        contender: name,
        connections: med((m) => m.connectionsWanted),
        opened: med((m) => m.opened),
        openS: med((m) => m.openS),
        rssBeforeMiB: mib((m) => m.proxyRssBeforeBytes),
        rssAfterMiB: mib((m) => m.proxyRssAfterBytes),
        kbPerConnection: med((m) => m.kbPerConnection),
        rssAfterCloseMiB: mib((m) => m.proxyRssAfterCloseBytes),
        backendKbPerConnection: med((m) => m.backendKbPerConnection),
        ...(ms.length ? { probe: `${ms.reduce((a, m) => a + m.probe.echoed, 0)}/${ms.reduce((a, m) => a + m.probe.tried, 0)}` } : {}),
        ...(ms.length ? { errors: ms.reduce((a, m) => a + m.errors, 0) } : {}),
        ...(notes.length ? { note: notes.join('; ') } : {}),
      });
    }
  }

  const peerLine = [
    peers.nginx ? peers.nginx.replace(/^nginx version:\s*/, '') : 'nginx: not installed',
    peers.haproxy ? peers.haproxy.replace(/^HAProxy version (\S+).*$/, 'HAProxy $1') : 'HAProxy: not installed',
    peers.caddy ? `Caddy ${peers.caddy.split(/\s+/)[0]}` : 'Caddy: not installed',
    peers.natsServer ?? 'nats-server: not installed',
  ].join(', ');
  const title = [
    `Skiff router benchmark, ${started.toISOString()}`,
    `machine: ${machine.hostname}, ${machine.cpuModel} x ${machine.cpuCount}, ${(machine.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, Linux ${machine.kernel}; load average at start ${loadAtStart.map((x) => x.toFixed(2)).join(' ')}`,
    `Node ${process.version}; loader ${loader.name} ${loader.version}${s.loader === 'wrk' ? ` (${s.wrkThreads} threads)` : ''}; peers: ${peerLine}`,
  ];
  const tables: string[] = [];
  if (roundCases.length > 0) {
    tables.push(
      renderTable(
        [
          ...title,
          `${s.rounds} round(s) x ${s.durationS} s (+${s.warmupS} s warm-up), medians across rounds; ratios are req/s ratios taken within a round, ` +
            `against the peer with the same number of threads (thr): x best = the faster of nginx and HAProxy; ` +
            `connections: ${roundCases.map((c) => `${c.name} ${c.connections}`).join(', ')}; CPU = proxy utime+stime per 10k requests`,
          ...(echoCase
            ? [
                `ws-echo: req/s = round trips/s (a ${echoCase.messageBytes} B text message and its echo, one in flight per WebSocket), CPU per 10k round trips; ` +
                  `client: raw WebSocket client in ${s.wsThreads} worker thread(s); non2xx = refused upgrades, err = failed/closed connections, wrong or missing echoes`,
              ]
            : []),
        ],
        rows,
      ),
    );
  }
  if (idleCase) {
    tables.push(
      renderIdleTable(
        [
          ...(roundCases.length > 0 ? [] : title),
          `ws-idle: ${s.idleConnections} WebSockets opened through a fresh proxy each round (${IDLE_CONCURRENCY} handshakes at a time), held idle ${idleSettleS(s)} s, then closed; medians of ${s.rounds} round(s).`,
          `RSS = VmRSS of the router process (skiff) or the nginx worker; KiB/conn = (after - before) / open; backend = the uWS backend's own growth; echo probe = sampled idle connections that still echoed.`,
        ],
        idleRows,
      ),
    );
  }
  if (roundCases.length > 0) tables.push(renderTargets(rows));
  const table = tables.join('\n\n');
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
      order: 'for each round: for each case: contenders in the listed order (ws-idle: a fresh skiff/nginx instance each)',
      host: 'bench.localhost',
      cases: caseDefs.map((c) => {
        switch (c.kind) {
          case 'http':
            return { name: c.name, method: c.method, path: c.path, connections: c.connections, requestBodyBytes: c.bodyBytes, responseBodyBytes: c.expectBytes };
          case 'ws-echo':
            return { name: c.name, path: c.path, connections: c.connections, messageBytes: c.messageBytes, messagesInFlightPerConnection: 1, loaderThreads: s.wsThreads, client: 'benchmarks/ws-client.ts (raw, on node:net)' };
          case 'ws-idle':
            return { name: c.name, path: c.path, connections: s.idleConnections, contenders: idleContenders, settleS: idleSettleS(s), handshakeConcurrency: IDLE_CONCURRENCY, openTimeoutS: IDLE_OPEN_TIMEOUT_S };
        }
      }),
    },
    contenders: Object.fromEntries(
      [...states.entries()].map(([n, st]) => [n, st.status === 'ok' ? { status: 'ok', port: st.c.port } : { status: st.status, note: st.note }]),
    ),
    caseNotes: Object.fromEntries(caseNotes),
    rounds: records,
    ...(idleCase ? { idleRounds: idleRecords } : {}),
    medians: rows,
    ...(idleCase ? { idleMedians: idleRows } : {}),
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
