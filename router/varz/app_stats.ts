// Per-app traffic counters for `router.app_stats` (bus/app-stats.ts reads
// them): responses by exact status code and a latency histogram of
// time-to-last-byte with Prometheus' fixed buckets, so routers and threads
// add up by plain summing. The request path finds its app's record once and
// increments numbers: no allocation once an app and a code have been seen.

import { APP_LATENCY_BUCKETS, type AppTraffic, type RouterAppStats } from '../../bus/messages';
const BUCKET_COUNT = APP_LATENCY_BUCKETS.length + 1;

/** Apps counted one by one; the rest are summed under OTHER_APP (bounded memory and message size). */
export const MAX_COUNTED_APPS = 1000;
export const OTHER_APP = '_other';

/** One app's counters on one router thread. */
export class AppRecord {
  /** Requests and WebSocket upgrades that reached the app (varz's top apps). */
  requests = 0;
  /** Status code -> responses; a Map of small integers is updated in place. */
  readonly codes = new Map<number, number>();
  /** Per bucket, not cumulative; the last one is +Inf. */
  readonly counts = new Float64Array(BUCKET_COUNT);
  sum = 0;
  count = 0;

  /** A finished HTTP request: its status and its time to the last byte. */
  response(status: number, seconds: number): void {
    this.codes.set(status, (this.codes.get(status) ?? 0) + 1);
    let i = 0;
    while (i < APP_LATENCY_BUCKETS.length && seconds > APP_LATENCY_BUCKETS[i]) i++;
    this.counts[i]++;
    this.sum += seconds;
    this.count++;
  }

  snapshot(): AppRecordSnapshot {
    return { requests: this.requests, codes: [...this.codes], counts: Array.from(this.counts), sum: this.sum, count: this.count };
  }

  add(other: AppRecordSnapshot): void {
    this.requests += other.requests;
    for (const [code, n] of other.codes) this.codes.set(code, (this.codes.get(code) ?? 0) + n);
    for (let i = 0; i < BUCKET_COUNT && i < other.counts.length; i++) this.counts[i] += other.counts[i];
    this.sum += other.sum;
    this.count += other.count;
  }
}

/** An AppRecord as plain data (posted between threads). */
export interface AppRecordSnapshot {
  requests: number;
  codes: Array<[number, number]>;
  counts: number[];
  sum: number;
  count: number;
}

/** The per-app counters of one router thread (or the sum of several). */
export class AppStats {
  private readonly records = new Map<string, AppRecord>();
  private other: AppRecord | null = null;

  /** The record of `appId` ('' for none: a route registered without an app id). */
  record(appId: string): AppRecord | null {
    if (appId === '') return null;
    const found = this.records.get(appId);
    if (found !== undefined) return found;
    if (this.records.size >= MAX_COUNTED_APPS) return (this.other ??= new AppRecord());
    const record = new AppRecord();
    this.records.set(appId, record);
    return record;
  }

  /** Every app, OTHER_APP last when apps beyond the limit were seen. */
  entries(): Array<[string, AppRecord]> {
    const all = [...this.records];
    if (this.other !== null) all.push([OTHER_APP, this.other]);
    return all;
  }

  snapshot(): Array<[string, AppRecordSnapshot]> {
    return this.entries().map(([app, record]) => [app, record.snapshot()]);
  }

  add(other: Array<[string, AppRecordSnapshot]>): void {
    for (const [app, snapshot] of other) {
      const record = app === OTHER_APP ? (this.other ??= new AppRecord()) : this.record(app);
      record?.add(snapshot);
    }
  }
}

/** The `router.app_stats` message for these counters (the sum over the router's threads). */
export function appStatsMessage(stats: AppStats, router: { id: string; host: string; startedMs: number }, now: number): RouterAppStats {
  const apps: Record<string, AppTraffic> = {};
  for (const [app, record] of stats.entries()) {
    if (record.count === 0) continue; // WebSocket-only apps: nothing to report yet
    const codes: Record<string, number> = {};
    for (const [code, n] of record.codes) codes[String(code)] = n;
    apps[app] = { codes, latency: { counts: Array.from(record.counts), sum: record.sum, count: record.count } };
  }
  return { router: router.id, host: router.host, started: router.startedMs, ts: now, buckets: [...APP_LATENCY_BUCKETS], apps };
}
