// `skiff bench APP`: a load run through the router against the app's first
// route (autocannon, in this process), with a progress line while it runs,
// then req/s, latency percentiles, throughput, errors and non-2xx as a
// table, `--json`, or an HTML report (`--html FILE`). `--compare-direct`
// runs the same load straight at one instance afterwards, so the router's
// share of the latency shows. The controller's GET /apps/:name/bench checks
// that the user may touch the app and gives the platform's bounds.

import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Query } from './api';
import { checkAppName, checkPositionals, checkWholeNumber, UsageError } from './args';
import { notFoundAs } from './apps';
import { renderHtmlReport, type BenchReport } from './bench-report';
import { appPath, CliError, groupQuery, type Context } from './context';
import { runLoad, type RunStats } from './loadrun';
import type { CommandArgs } from './registry';
import { formatBytes } from './size';
import { formatTable } from './table';
import { appUrls } from './urls';

export const BENCH_USAGE = 'skiff bench APP [--connections C] [--duration S] [--path P] [--json] [--html FILE] [--compare-direct]';
const DEFAULT_CONNECTIONS = 10;
const DEFAULT_DURATION_S = 10;

interface BenchPlan {
  name: string;
  uris: string[];
  router_url?: string;
  limits: { max_duration: number; max_connections: number };
  running: number;
  direct: { index: number; host: string; port: number } | null;
}

/** Where a route is reached: names under `.localhost` are this machine (RFC 6761), as curl and browsers take them. */
export function connectTarget(url: string): { url: string; host: string } {
  const parsed = new URL(url);
  const host = parsed.host;
  if (parsed.hostname === 'localhost' || parsed.hostname.endsWith('.localhost')) parsed.hostname = '127.0.0.1';
  return { url: parsed.toString(), host };
}

export function checkPath(path: string): string {
  if (!path.startsWith('/') || /[\s\u0000-\u001f]/.test(path)) throw new UsageError(`--path must start with / and hold no spaces, got ${JSON.stringify(path)}`);
  return path;
}

export async function bench(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, BENCH_USAGE);
  const name = checkAppName(positionals[0]);
  const connections = values.connections !== undefined ? checkWholeNumber(values.connections, '--connections', 1) : DEFAULT_CONNECTIONS;
  const durationS = values.duration !== undefined ? checkWholeNumber(values.duration, '--duration', 1) : DEFAULT_DURATION_S;
  const path = checkPath(typeof values.path === 'string' ? values.path : '/');
  const htmlFile = typeof values.html === 'string' ? resolve(values.html) : undefined;
  if (values.html !== undefined && (htmlFile === undefined || values.html === '')) throw new UsageError('--html needs a file name');

  const api = ctx.api();
  const query: Query = groupQuery(values.group);
  const plan = await api.json<BenchPlan>('GET', appPath(name, '/bench'), { query }).catch(notFoundAs(name));
  if (connections > plan.limits.max_connections) {
    throw new UsageError(`--connections ${connections} is over the platform's limit of ${plan.limits.max_connections} (config store: bench.max_connections)`);
  }
  if (durationS > plan.limits.max_duration) {
    throw new UsageError(`--duration ${durationS} is over the platform's limit of ${plan.limits.max_duration} s (config store: bench.max_duration)`);
  }
  if (values['compare-direct'] && plan.direct === null) throw new CliError(`${name} has no running instance to compare with: skiff app ${name}`);

  const appUrl = appUrls([plan.uris[0]!], plan.router_url)[0]!.replace(/\/$/, '') + path;
  const started = new Date();
  const routerRun = await loadWithProgress(ctx, 'router', appUrl, connectTarget(appUrl), connections, durationS);
  const report: BenchReport = { app: name, path, connections, duration: durationS, started: started.toISOString(), router: routerRun };
  if (values['compare-direct'] && plan.direct !== null) {
    const { index, host, port } = plan.direct;
    const directUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
    const run = await loadWithProgress(ctx, `instance ${index}`, directUrl, { url: directUrl, host: new URL(appUrl).host }, connections, durationS);
    report.direct = { ...run, instance: index };
  }

  const table = summaryTable(report, plan.running);
  if (htmlFile !== undefined) {
    writeFileSync(htmlFile, renderHtmlReport(report, table));
    ctx.note(`report written to ${htmlFile}`);
  }
  if (values.json) ctx.printJson(report);
  else ctx.print(table);
  return 0;
}

async function loadWithProgress(ctx: Context, what: string, shownUrl: string, target: { url: string; host: string }, connections: number, durationS: number): Promise<RunStats> {
  ctx.note(`bench: ${connections} connection${connections === 1 ? '' : 's'} for ${durationS} s on ${shownUrl} (${what})`);
  const tty = ctx.err.isTTY === true;
  const run = await runLoad({
    url: target.url,
    host: target.host,
    connections,
    durationS,
    onProgress: (p) => {
      const line = `  ${Math.min(durationS, Math.round(p.elapsedS))}/${durationS} s  ${p.lastSecond} req/s  ${p.requests} requests  ${p.errors} errors  ${p.non2xx} non-2xx`;
      // A terminal gets one line redrawn; a log gets a line every 5 s rather than one a second.
      if (tty) ctx.err.write(`\r${line}\u001b[K`);
      else if (Math.round(p.elapsedS) % 5 === 0) ctx.note(line);
    },
  });
  if (tty) ctx.err.write('\r\u001b[K');
  // The summary is in URL terms; the run connected to the router's address.
  return { ...run, url: shownUrl };
}

const ms = (value: number) => (value >= 100 ? `${Math.round(value)}ms` : `${Number(value.toFixed(value >= 10 ? 1 : 2))}ms`);

export function summaryTable(report: BenchReport, runningInstances?: number): string {
  const row = (target: string, run: RunStats) => [
    target,
    run.rps.toFixed(1),
    ms(run.latency_ms.p50),
    ms(run.latency_ms.p90),
    ms(run.latency_ms.p99),
    ms(run.latency_ms.max),
    `${formatBytes(run.throughput_bytes_per_s)}/s`,
    run.requests,
    run.errors,
    run.non_2xx,
  ];
  const across = runningInstances !== undefined && runningInstances > 1 ? ` (${runningInstances} instances)` : '';
  const rows = [row(`router${across}`, report.router)];
  if (report.direct !== undefined) rows.push(row(`instance ${report.direct.instance}`, report.direct));
  const lines = [formatTable(['TARGET', 'REQ/S', 'P50', 'P90', 'P99', 'MAX', 'THROUGHPUT', 'REQUESTS', 'ERRORS', 'NON-2XX'], rows)];
  if (report.direct !== undefined) {
    const r = report.router.latency_ms;
    const d = report.direct.latency_ms;
    const sign = (x: number) => (x >= 0 ? '+' : '-') + ms(Math.abs(x));
    lines.push('', `router overhead: ${sign(r.p50 - d.p50)} p50, ${sign(r.p99 - d.p99)} p99`);
  }
  return lines.join('\n');
}
