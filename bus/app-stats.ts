// What the routers measure and the DEAs use, per app, as the controller's
// /metrics and console and the health manager's autoscaler read it.
//
// Routers publish cumulative counters (`router.app_stats`, every 2 s); DEAs
// publish their instances' usage (`dea.stats`, every 5 s). The collector
// keeps a short history per router and the latest message per DEA, forgets
// a sender not heard from for 15 s, and starts a router's history over when
// its counters did (a new `started`, or a smaller count). Everything it
// answers comes from the pure functions below, which the tests call directly.

import type { Bus, Subscription } from './connection';
import type { Logger } from './log';
import { APP_LATENCY_BUCKETS, type AppTraffic, type DeaStats, type DeaStatsInstance, type RouterAppStats } from './messages';
import { Subjects } from './subjects';
import { decode, RejectionCounter, validateDeaStats, validateRouterAppStats } from './validate';

/** A router or DEA silent this long is gone (its figures no longer count). */
export const STATS_STALE_MS = 15_000;

/** One app's counters summed over routers (or their increase over a window). */
export interface AppTotals {
  codes: Record<string, number>;
  /** Per bucket of APP_LATENCY_BUCKETS plus +Inf, not cumulative. */
  counts: number[];
  /** Seconds. */
  sum: number;
  count: number;
}

/** What an app did over a window, summed over routers. */
export interface AppWindow extends AppTotals {
  /** Requests per second (each router's increase over its own time span, summed). */
  rate: number;
  /** Seconds; NaN without requests in the window. */
  p50: number;
  p99: number;
}

function emptyTotals(): AppTotals {
  return { codes: {}, counts: new Array<number>(APP_LATENCY_BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
}

/** A router's message with buckets other than ours contributes its codes, not its latency. */
function sameBuckets(buckets: readonly number[]): boolean {
  return buckets.length === APP_LATENCY_BUCKETS.length && buckets.every((b, i) => b === APP_LATENCY_BUCKETS[i]);
}

function addInto(into: AppTotals, traffic: AppTraffic, sign: 1 | -1, latency: boolean): void {
  for (const [code, n] of Object.entries(traffic.codes)) into.codes[code] = (into.codes[code] ?? 0) + sign * n;
  if (!latency) return;
  for (let i = 0; i < into.counts.length; i++) into.counts[i]! += sign * (traffic.latency.counts[i] ?? 0);
  into.sum += sign * traffic.latency.sum;
  into.count += sign * traffic.latency.count;
}

/** Every app's counters summed over the latest message of each router. */
export function sumApps(latest: readonly RouterAppStats[]): Map<string, AppTotals> {
  const totals = new Map<string, AppTotals>();
  for (const message of latest) {
    const latency = sameBuckets(message.buckets);
    for (const [app, traffic] of Object.entries(message.apps)) {
      let t = totals.get(app);
      if (t === undefined) totals.set(app, (t = emptyTotals()));
      addInto(t, traffic, 1, latency);
    }
  }
  return totals;
}

/** Requests a router counted in all (a smaller total than before means it restarted). */
export function totalCount(message: RouterAppStats): number {
  let n = 0;
  for (const traffic of Object.values(message.apps)) n += traffic.latency.count;
  return n;
}

/**
 * One router's increase per app between the last sample at or before
 * `fromMs` and the last at or before `toMs`. History is oldest first and of
 * one router run. Before its first sample the router's counters were zero at
 * `started`, so a router that started inside the window counts from there;
 * a history that begins inside the window (the consumer came later) counts
 * from its first sample. Undefined when no time passed between the two.
 */
export function routerDelta(history: readonly RouterAppStats[], fromMs: number, toMs: number): { seconds: number; apps: Map<string, AppTotals> } | undefined {
  let top: RouterAppStats | undefined;
  let base: RouterAppStats | undefined;
  for (const sample of history) {
    if (sample.ts > toMs) break;
    top = sample;
    if (sample.ts <= fromMs) base = sample;
  }
  if (top === undefined) return undefined;
  let baseTs: number;
  if (base !== undefined) baseTs = base.ts;
  else if (top.started >= fromMs) baseTs = top.started;
  else {
    base = history[0];
    baseTs = base!.ts;
  }
  const seconds = (top.ts - baseTs) / 1000;
  if (seconds <= 0) return undefined;
  const latency = sameBuckets(top.buckets);
  const apps = new Map<string, AppTotals>();
  for (const [app, traffic] of Object.entries(top.apps)) {
    const t = emptyTotals();
    addInto(t, traffic, 1, latency);
    const before = base?.apps[app];
    if (before !== undefined) addInto(t, before, -1, latency);
    if (t.count > 0 || Object.values(t.codes).some((n) => n > 0)) apps.set(app, t);
  }
  return { seconds, apps };
}

/**
 * One app over the last `windowMs` of each router's history (ending at its
 * newest sample, so routers' clocks need not agree), summed over routers.
 */
export function appWindow(histories: ReadonlyArray<readonly RouterAppStats[]>, app: string, windowMs: number): AppWindow {
  const total = emptyTotals();
  let rate = 0;
  for (const history of histories) {
    const newest = history[history.length - 1];
    if (newest === undefined) continue;
    const delta = routerDelta(history, newest.ts - windowMs, newest.ts);
    const mine = delta?.apps.get(app);
    if (delta === undefined || mine === undefined) continue;
    for (const [code, n] of Object.entries(mine.codes)) total.codes[code] = (total.codes[code] ?? 0) + n;
    for (let i = 0; i < total.counts.length; i++) total.counts[i]! += mine.counts[i]!;
    total.sum += mine.sum;
    total.count += mine.count;
    rate += mine.count / delta.seconds;
  }
  return { ...total, rate, p50: histogramQuantile(0.5, total.counts), p99: histogramQuantile(0.99, total.counts) };
}

/** One point of an app's recent traffic (the console's charts). */
export interface AppPoint {
  /** End of the step, epoch ms. */
  t: number;
  rate: number;
  /** Seconds; null without requests in the step. */
  p50: number | null;
  p99: number | null;
  /** Responses by status class in the step: 2xx, 3xx, 4xx, 5xx. */
  classes: [number, number, number, number];
}

/**
 * An app's traffic in steps of `stepMs` ending at `endMs`, `steps` of them,
 * oldest first. Steps are on the routers' clocks, which on one cluster agree
 * closely enough for a chart.
 */
export function appSeries(histories: ReadonlyArray<readonly RouterAppStats[]>, app: string, endMs: number, stepMs: number, steps: number): AppPoint[] {
  const points: AppPoint[] = [];
  for (let k = steps - 1; k >= 0; k--) {
    const to = endMs - k * stepMs;
    const counts = new Array<number>(APP_LATENCY_BUCKETS.length + 1).fill(0);
    const classes: [number, number, number, number] = [0, 0, 0, 0];
    let rate = 0;
    for (const history of histories) {
      const delta = routerDelta(history, to - stepMs, to);
      const mine = delta?.apps.get(app);
      if (delta === undefined || mine === undefined) continue;
      rate += mine.count / delta.seconds;
      for (let i = 0; i < counts.length; i++) counts[i]! += mine.counts[i]!;
      for (const [code, n] of Object.entries(mine.codes)) {
        const c = Number(code[0]) - 2;
        if (c >= 0 && c < 4) classes[c as 0 | 1 | 2 | 3] += n;
      }
    }
    const p50 = histogramQuantile(0.5, counts);
    const p99 = histogramQuantile(0.99, counts);
    points.push({ t: to, rate, p50: Number.isNaN(p50) ? null : p50, p99: Number.isNaN(p99) ? null : p99, classes });
  }
  return points;
}

/**
 * The q-quantile of a histogram (counts per bucket of APP_LATENCY_BUCKETS
 * plus +Inf), interpolated linearly inside its bucket as Prometheus'
 * histogram_quantile does; the largest finite bound when it falls in +Inf.
 * NaN for an empty histogram.
 */
export function histogramQuantile(q: number, counts: readonly number[], bounds: readonly number[] = APP_LATENCY_BUCKETS): number {
  let total = 0;
  for (const c of counts) total += c;
  if (total <= 0) return NaN;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (seen + c >= rank && c > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1]!;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      return lower + (bounds[i]! - lower) * ((rank - seen) / c);
    }
    seen += c;
  }
  return bounds[bounds.length - 1]!;
}

/** Instances of an app across DEAs. */
export function appInstances(deas: readonly DeaStats[], app: string): DeaStatsInstance[] {
  const found: DeaStatsInstance[] = [];
  for (const dea of deas) for (const instance of dea.instances) if (instance.app === app) found.push(instance);
  return found;
}

/** CPU of an app's instances, summed (percent of one core). */
export function appCpu(deas: readonly DeaStats[], app: string): number {
  let cpu = 0;
  for (const instance of appInstances(deas, app)) if (instance.state === 'RUNNING') cpu += instance.cpu;
  return cpu;
}

export function runningInstances(deas: readonly DeaStats[], app: string): number {
  let n = 0;
  for (const instance of appInstances(deas, app)) if (instance.state === 'RUNNING') n++;
  return n;
}

/** The autoscaler takes its figures over this much of the routers' recent history. */
export const AUTOSCALE_WINDOW_MS = 10_000;

/** An app's figures as the autoscaler sees them; a source not heard from leaves its figure undefined. */
export interface AutoscaleFigures {
  /** Requests per second through all routers over AUTOSCALE_WINDOW_MS. */
  rps?: number;
  /** p99 latency in ms over the window; undefined when no request was measured. */
  p99Ms?: number;
  /** CPU of all running instances, percent of one core, summed. */
  cpu?: number;
}

/**
 * The figures the health manager's autoscaler decides on, here so that the
 * controller shows a user (`skiff autoscale APP`) the very same ones.
 */
export function autoscaleFigures(stats: AppStatsCollector, appId: string): AutoscaleFigures {
  const figures: AutoscaleFigures = {};
  if (stats.latestRouters().length > 0) {
    const window = stats.window(appId, AUTOSCALE_WINDOW_MS);
    figures.rps = window.rate;
    if (window.count > 0 && !Number.isNaN(window.p99)) figures.p99Ms = window.p99 * 1000;
  }
  const deas = stats.latestDeas();
  if (deas.length > 0) figures.cpu = appCpu(deas, appId);
  return figures;
}

export interface AppStatsOptions {
  /** How far back router samples are kept (the longest window asked for). Default 5 min. */
  historyMs?: number;
  staleMs?: number;
  clock?: () => number;
}

/**
 * Subscribes to `router.app_stats` and `dea.stats` and keeps what the pure
 * functions above need. Malformed messages are counted and logged.
 */
export class AppStatsCollector {
  private readonly routers = new Map<string, { history: RouterAppStats[]; heardAt: number }>();
  private readonly deas = new Map<string, { message: DeaStats; heardAt: number }>();
  private readonly subscriptions: Subscription[] = [];
  readonly rejections: RejectionCounter;
  private readonly historyMs: number;
  private readonly staleMs: number;
  private readonly clock: () => number;

  constructor(
    private readonly bus: Bus,
    log: Logger,
    options: AppStatsOptions = {},
  ) {
    this.rejections = new RejectionCounter(log);
    this.historyMs = options.historyMs ?? 5 * 60_000;
    this.staleMs = options.staleMs ?? STATS_STALE_MS;
    this.clock = options.clock ?? Date.now;
  }

  start(): void {
    this.subscriptions.push(
      this.bus.subscribe(Subjects.routerAppStats, (msg) => {
        const checked = decode(msg.data, validateRouterAppStats);
        if (checked.ok) this.addRouter(checked.value);
        else this.rejections.reject(msg.subject, checked.error);
      }),
      this.bus.subscribe(Subjects.deaStats, (msg) => {
        const checked = decode(msg.data, validateDeaStats);
        if (checked.ok) this.addDea(checked.value);
        else this.rejections.reject(msg.subject, checked.error);
      }),
    );
  }

  stop(): void {
    for (const sub of this.subscriptions) sub.unsubscribe();
    this.subscriptions.length = 0;
  }

  addRouter(message: RouterAppStats): void {
    const now = this.clock();
    let entry = this.routers.get(message.router);
    if (entry === undefined) this.routers.set(message.router, (entry = { history: [], heardAt: now }));
    entry.heardAt = now;
    const last = entry.history[entry.history.length - 1];
    if (last !== undefined && (last.started !== message.started || totalCount(message) < totalCount(last) || message.ts <= last.ts)) {
      // Restarted (or a clock step back): differences across it mean nothing.
      entry.history.length = 0;
    }
    entry.history.push(message);
    const keepFrom = message.ts - this.historyMs;
    // Keep one sample at or before the window's start: it is the window's base.
    let drop = 0;
    while (drop + 1 < entry.history.length && entry.history[drop + 1]!.ts <= keepFrom) drop++;
    if (drop > 0) entry.history.splice(0, drop);
  }

  addDea(message: DeaStats): void {
    this.deas.set(message.dea, { message, heardAt: this.clock() });
  }

  private prune(): void {
    const cutoff = this.clock() - this.staleMs;
    for (const [id, entry] of this.routers) if (entry.heardAt < cutoff) this.routers.delete(id);
    for (const [id, entry] of this.deas) if (entry.heardAt < cutoff) this.deas.delete(id);
  }

  /** Each live router's samples, oldest first. */
  routerHistories(): RouterAppStats[][] {
    this.prune();
    return [...this.routers.values()].map((e) => e.history);
  }

  /** The latest message of each live router. */
  latestRouters(): RouterAppStats[] {
    return this.routerHistories().map((h) => h[h.length - 1]!);
  }

  /** The latest message of each live DEA. */
  latestDeas(): DeaStats[] {
    this.prune();
    return [...this.deas.values()].map((e) => e.message);
  }

  /** Counters since each router started, summed per app. */
  totals(): Map<string, AppTotals> {
    return sumApps(this.latestRouters());
  }

  /** An app over the last `windowMs` (rate, p50/p99, codes). */
  window(app: string, windowMs: number): AppWindow {
    return appWindow(this.routerHistories(), app, windowMs);
  }

  /** An app's recent traffic for a chart: `steps` steps of `stepMs` up to now. */
  series(app: string, stepMs: number, steps: number): AppPoint[] {
    return appSeries(this.routerHistories(), app, this.clock(), stepMs, steps);
  }
}
