// npm run bench:scale  (node --expose-gc dist/benchmarks/scale.js [flags]; bench:scale then runs the
// 100,000-idle-WebSocket case of bench.js)
//
// The routing table at scale, measured three ways:
//  1. lookup cost in-process (router/registry), 10 to 1,000,000 endpoints:
//     ns per lookup must stay flat, heap per endpoint;
//  2. a real `skiff router` loaded from NATS with 1,000,000 endpoints over
//     250,000 hosts: time to load, messages lost (none allowed), slow-consumer
//     events, router RSS per endpoint, serving throughput before and after;
//  3. a register storm (100,000 messages/s for some seconds, refreshing the
//     loaded endpoints) while wrk drives traffic: throughput during the storm
//     against the baseline, and every message applied.
// Loopback only, bounded in time; every process it starts is stopped by pid.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect, type NatsConnection } from 'nats';
import { Registry } from '../router/registry/registry';
import { caseDef, type BenchCase } from './cases';
import type { Loader } from './loader';
import { wrkLoader } from './loader-wrk';
import { rssBytes } from './mem';
import { freePort, installCleanupHandlers, sleep, startProcess, stopAll, waitForPort } from './procs';
import { machineInfo, peerVersions, writeResults } from './report';
import { startSkiff } from './skiff';

const USAGE = `usage: node --expose-gc dist/benchmarks/scale.js [flags]
  --endpoints N     endpoints loaded into the router (default 1000000)
  --hosts N         distinct hosts they spread over (default 250000)
  --storm-rate N    register messages per second during the storm (default 100000)
  --storm-s S       storm (and wrk) seconds (default 5)
  --wrk-s S         seconds per throughput measurement (default 5)
  --quick           100,000 endpoints, 25,000 hosts, 3 s storm (not saved unless --save)
  --save / --no-save`;

interface Settings {
  endpoints: number;
  hosts: number;
  stormRate: number;
  stormS: number;
  wrkS: number;
  quick: boolean;
  save: boolean;
}

function parseArgs(argv: string[]): Settings {
  const s: Settings = { endpoints: 1_000_000, hosts: 250_000, stormRate: 100_000, stormS: 5, wrkS: 5, quick: false, save: true };
  let saveSet = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${flag} needs a positive number`);
      return v;
    };
    switch (flag) {
      case '--endpoints': s.endpoints = Math.round(num()); break;
      case '--hosts': s.hosts = Math.round(num()); break;
      case '--storm-rate': s.stormRate = Math.round(num()); break;
      case '--storm-s': s.stormS = num(); break;
      case '--wrk-s': s.wrkS = num(); break;
      case '--quick': s.quick = true; break;
      case '--save': s.save = true; saveSet = true; break;
      case '--no-save': s.save = false; saveSet = true; break;
      case '--help': process.stdout.write(USAGE + '\n'); process.exit(0);
      // falls through (exit)
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  if (s.quick) {
    s.endpoints = 100_000;
    s.hosts = 25_000;
    s.stormS = 3;
    s.wrkS = 3;
    if (!saveSet) s.save = false;
  }
  if (s.hosts > s.endpoints) throw new Error('--hosts cannot exceed --endpoints');
  return s;
}

const log = (line: string): void => {
  process.stderr.write(line + '\n');
};

/** Endpoint i: host i % hosts, port from a range no app listens on (never requested). */
function registration(i: number, hosts: number): string {
  const host = i % hosts;
  const port = 20000 + Math.floor(i / hosts);
  return `{"host":"127.0.0.1","port":${port},"uris":["h${host}.scale.localhost"],"app":"app-${host}","private_instance_id":"i-${i}","stale_threshold_in_seconds":3600}`;
}

// ---------------------------------------------------------------------------
// 1. Lookup cost in-process.

interface LookupRow {
  endpoints: number;
  hosts: number;
  nsPerHit: number;
  nsPerMiss: number;
  heapBytesPerEndpoint: number | null;
  registerPerS: number;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function lookupCost(endpoints: number, hosts: number): LookupRow {
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const registry = new Registry({ defaultStaleThresholdMs: 3_600_000, emptyPoolTtlMs: 3_600_000 });
  const now = Date.now();
  const t0 = performance.now();
  for (let i = 0; i < endpoints; i++) registry.register(JSON.parse(registration(i, hosts)), now);
  const registerS = (performance.now() - t0) / 1000;
  gc();
  const heapAfter = process.memoryUsage().heapUsed;
  // Distinct strings, as requests bring them: no help from string interning.
  const probes = 200_000;
  const hitHosts = Array.from({ length: probes }, (_, k) => `h${(k * 7919) % hosts}.scale.localhost`.slice(0));
  const missHosts = Array.from({ length: probes }, (_, k) => `x${k}.nowhere.localhost`);
  let found = 0;
  const time = (list: string[]): number => {
    const start = process.hrtime.bigint();
    for (let round = 0; round < 5; round++) for (const h of list) if (registry.lookup(h, '/') !== undefined) found++;
    return Number(process.hrtime.bigint() - start) / (5 * list.length);
  };
  time(hitHosts); // warm-up (JIT, caches)
  const nsPerHit = time(hitHosts);
  const nsPerMiss = time(missHosts);
  if (found === 0) throw new Error('lookup found nothing: the benchmark is broken');
  return {
    endpoints,
    hosts,
    nsPerHit,
    nsPerMiss,
    // Below a thousand endpoints the figure is noise from the heap's own bookkeeping.
    heapBytesPerEndpoint: (globalThis as { gc?: unknown }).gc && endpoints >= 1000 ? (heapAfter - heapBefore) / endpoints : null,
    registerPerS: endpoints / registerS,
  };
}

// ---------------------------------------------------------------------------
// 2 and 3. A real router.

async function varz(statusPort: number): Promise<Record<string, any>> {
  const res = await fetch(`http://127.0.0.1:${statusPort}/varz`, {
    headers: { authorization: `Basic ${Buffer.from('bench:bench').toString('base64')}` },
  });
  if (res.status !== 200) throw new Error(`/varz: ${res.status}`);
  return (await res.json()) as Record<string, any>;
}

/** Publishes `count` messages made by `make(i)`, flushing every batch so the client never holds many. */
async function publishAll(nc: NatsConnection, count: number, make: (i: number) => string): Promise<void> {
  const batch = 5000;
  for (let i = 0; i < count; i += batch) {
    const end = Math.min(count, i + batch);
    for (let k = i; k < end; k++) nc.publish('router.register', make(k));
    await nc.flush();
  }
}

/** Publishes at `rate` messages/s for `seconds`, paced every 10 ms; resolves with the count sent. */
async function storm(nc: NatsConnection, rate: number, seconds: number, make: (i: number) => string): Promise<number> {
  const start = performance.now();
  let sent = 0;
  const total = Math.round(rate * seconds);
  while (sent < total) {
    const due = Math.min(total, Math.round(((performance.now() - start) / 1000) * rate));
    for (; sent < due; sent++) nc.publish('router.register', make(sent));
    await sleep(10);
  }
  await nc.flush();
  return sent;
}

interface ServeRow {
  phase: string;
  endpoints: number;
  rps: number;
  p99ms: number;
  errors: number;
}

async function main(): Promise<void> {
  let s: Settings;
  try {
    s = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  installCleanupHandlers();
  const machine = machineInfo();
  const startedAt = new Date();
  if ((globalThis as { gc?: unknown }).gc === undefined) log('note: run with --expose-gc for heap per endpoint');

  // 1. Lookup cost.
  log('lookup cost in-process ...');
  const lookups: LookupRow[] = [];
  for (const n of [...new Set([10, 1_000, 100_000, s.endpoints])]) {
    if (n > s.endpoints) continue;
    const row = lookupCost(n, Math.max(1, Math.round((n * s.hosts) / s.endpoints)));
    lookups.push(row);
    log(`  ${n} endpoints: ${row.nsPerHit.toFixed(0)} ns/hit, ${row.nsPerMiss.toFixed(0)} ns/miss`);
    gc();
  }

  // 2. A router loaded from NATS.
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-scale-'));
  const loader: Loader | undefined = wrkLoader(tmpDir);
  if (loader === undefined) throw new Error('wrk is not installed (apt-get install -y wrk)');
  const small = caseDef('small') as BenchCase;
  const backendPort = await freePort();
  const backend = startProcess({
    name: 'backend',
    cmd: process.execPath,
    args: [path.join(__dirname, 'backend.js'), '--port', String(backendPort)],
    stdinPipe: true,
  });
  await waitForPort(backend, backendPort);
  // A million endpoints take about a gigabyte of heap: more than Node's default old space on small machines.
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --max-old-space-size=8192`.trim();
  const router = await startSkiff(backendPort, ['--droplet-stale-threshold', '3600', '--prune-interval', '3600']);
  const routerPid = router.main!.pid;
  const nc = await connect({ servers: `127.0.0.1:${router.info.natsPort}`, name: 'skiff-scale' });
  const serving: ServeRow[] = [];
  const serve = async (phase: string, endpoints: number): Promise<ServeRow> => {
    const m = await loader.run({ port: router.port, benchCase: small, durationS: s.wrkS });
    const row = { phase, endpoints, rps: m.rps, p99ms: m.p99ms, errors: m.errors + m.non2xx };
    serving.push(row);
    log(`  ${phase}: ${Math.round(m.rps)} req/s, p99 ${m.p99ms.toFixed(2)} ms`);
    return row;
  };

  await sleep(500);
  const base = await varz(router.info.statusPort);
  const rssEmpty = rssBytes(routerPid) ?? 0;
  await serve('1 route', base.droplets as number);

  log(`loading ${s.endpoints} endpoints over ${s.hosts} hosts through NATS ...`);
  const loadStart = performance.now();
  await publishAll(nc, s.endpoints, (i) => registration(i, s.hosts));
  const published = performance.now();
  let loaded = base;
  for (;;) {
    loaded = await varz(router.info.statusPort);
    if ((loaded.droplets as number) >= s.endpoints + (base.droplets as number)) break;
    if (performance.now() - published > 120_000) break;
    await sleep(250);
  }
  const loadS = (performance.now() - loadStart) / 1000;
  await sleep(1000);
  loaded = await varz(router.info.statusPort);
  const rssLoaded = rssBytes(routerPid) ?? 0;
  const load = {
    endpoints: s.endpoints,
    hosts: s.hosts,
    seconds: loadS,
    messagesPerS: s.endpoints / loadS,
    endpointsInTable: (loaded.droplets as number) - (base.droplets as number),
    registerMessagesReceived: loaded.registry_messages.register - base.registry_messages.register,
    slowConsumerEvents: loaded.slow_consumer_events,
    rejectedMessages: loaded.rejected_messages.total,
    rssEmptyBytes: rssEmpty,
    rssLoadedBytes: rssLoaded,
    rssBytesPerEndpoint: (rssLoaded - rssEmpty) / s.endpoints,
  };
  log(`  loaded in ${loadS.toFixed(1)} s; ${load.endpointsInTable} in the table; RSS ${(load.rssBytesPerEndpoint).toFixed(0)} B/endpoint`);
  await serve(`${s.endpoints} endpoints`, loaded.droplets as number);

  // 3. Storm while serving.
  log(`register storm: ${s.stormRate}/s for ${s.stormS} s while serving ...`);
  const beforeStorm = await varz(router.info.statusPort);
  const stormMake = (i: number): string => registration(i % s.endpoints, s.hosts);
  const [sent, during] = await Promise.all([
    storm(nc, s.stormRate, s.stormS, stormMake),
    loader.run({ port: router.port, benchCase: small, durationS: s.stormS }),
  ]);
  serving.push({ phase: 'during storm', endpoints: s.endpoints, rps: during.rps, p99ms: during.p99ms, errors: during.errors + during.non2xx });
  let afterStorm = beforeStorm;
  const stormEnd = performance.now();
  for (;;) {
    afterStorm = await varz(router.info.statusPort);
    if (afterStorm.registry_messages.register - beforeStorm.registry_messages.register >= sent) break;
    if (performance.now() - stormEnd > 30_000) break;
    await sleep(250);
  }
  const stormResult = {
    rate: s.stormRate,
    seconds: s.stormS,
    sent,
    applied: afterStorm.registry_messages.register - beforeStorm.registry_messages.register,
    slowConsumerEvents: afterStorm.slow_consumer_events - beforeStorm.slow_consumer_events,
    rpsDuring: during.rps,
    p99msDuring: during.p99ms,
  };
  log(`  sent ${sent}, applied ${stormResult.applied}; ${Math.round(during.rps)} req/s during`);

  await nc.close();
  await router.stop();
  await stopAll();

  // Report.
  const peers = peerVersions();
  const title = [
    `Skiff routing table at scale, ${startedAt.toISOString()}`,
    `machine: ${machine.cpuModel} x ${machine.cpuCount}, ${(machine.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, ${machine.kernel}; Node ${process.version}; loader wrk (2 threads, 50 connections, /small); nats-server ${peers.natsServer ?? '?'}; router: 1 thread`,
  ];
  const lines: string[] = [...title, ''];
  lines.push('lookup (in-process Registry.lookup, 200k distinct host strings x 5)');
  lines.push(table(['endpoints', 'hosts', 'ns/hit', 'ns/miss', 'heap B/endpoint', 'registers/s'], lookups.map((r) => [
    fmt(r.endpoints), fmt(r.hosts), r.nsPerHit.toFixed(0), r.nsPerMiss.toFixed(0), r.heapBytesPerEndpoint === null ? '-' : r.heapBytesPerEndpoint.toFixed(0), fmt(Math.round(r.registerPerS)),
  ])));
  lines.push('');
  lines.push('router loaded through NATS');
  lines.push(table(['endpoints', 'hosts', 'load s', 'msgs/s', 'in table', 'lost', 'slow consumer', 'RSS MiB', 'RSS B/endpoint'], [[
    fmt(load.endpoints), fmt(load.hosts), load.seconds.toFixed(1), fmt(Math.round(load.messagesPerS)), fmt(load.endpointsInTable),
    fmt(Math.max(0, load.endpoints - load.registerMessagesReceived)), String(load.slowConsumerEvents), (load.rssLoadedBytes / 2 ** 20).toFixed(0), load.rssBytesPerEndpoint.toFixed(0),
  ]]));
  lines.push('');
  lines.push('serving while the table grows and churns');
  lines.push(table(['phase', 'endpoints', 'req/s', 'x 1 route', 'p99 ms', 'errors'], serving.map((r) => [
    r.phase, fmt(r.endpoints), fmt(Math.round(r.rps)), (r.rps / serving[0]!.rps).toFixed(2), r.p99ms.toFixed(2), String(r.errors),
  ])));
  // `applied` also counts the harness's own periodic re-registration of the served route.
  lines.push(`storm: ${fmt(stormResult.sent)} register messages at ${fmt(s.stormRate)}/s, ${fmt(stormResult.applied)} applied (${fmt(Math.max(0, stormResult.sent - stormResult.applied))} lost), ${stormResult.slowConsumerEvents} slow-consumer events`);
  process.stdout.write(lines.join('\n') + '\n');

  if (s.save) {
    const file = writeResults(path.join(__dirname, '..', '..', 'benchmarks', 'results'), {
      kind: 'scale',
      startedAt: startedAt.toISOString(),
      machine,
      node: process.version,
      peers,
      settings: s,
      lookups,
      load,
      serving,
      storm: stormResult,
    });
    log(`results: ${path.relative(process.cwd(), file)}`);
  }
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

main().catch(async (error: unknown) => {
  process.stderr.write(`scale benchmark failed: ${(error as Error).stack ?? String(error)}\n`);
  await stopAll();
  process.exit(1);
});
