import { AppStats, OTHER_APP, type AppRecordSnapshot } from './app_stats';
import { LatencyHistogram, type LatencySnapshot } from './latency';

export interface AppRequestCount {
  appId: string;
  requests: number;
}

/** The router's counters; plain fields so the request path only increments. */
export class RouterStats {
  requests = 0;
  responses2xx = 0;
  responses3xx = 0;
  responses4xx = 0;
  responses5xx = 0;
  responsesOther = 0;
  /** Requests the router refused itself: unknown route, bad Host, malformed requests. */
  badRequests = 0;
  /** 502/504 answered by the router because an app failed. */
  badGateways = 0;
  /** Clients that left before their response was complete. */
  clientAborts = 0;
  /** Further attempts made on another endpoint (or a fresh connection). */
  retries = 0;
  /** Requests turned away because every endpoint was at its connection limit. */
  connectionLimitRejections = 0;
  /** Requests written to an app while another was outstanding on the same connection. */
  pipelinedRequests = 0;
  /** Pipelined requests sent again on a connection of their own (no response came on theirs). */
  pipelineReplays = 0;
  /** Backends found closing connections on pipelined requests, served unpipelined since. */
  pipelineRefusals = 0;
  /** Pipelines whose waiting requests were moved off a slow response. */
  pipelineStalls = 0;
  registerMessages = 0;
  unregisterMessages = 0;
  slowConsumerEvents = 0;
  readonly latency = new LatencyHistogram();
  /** Per-app counters (router.app_stats); apps beyond the limit are summed under `_other`. */
  readonly apps = new AppStats();

  /** A WebSocket upgrade that reached an app (HTTP requests are counted by the proxy through `apps`). */
  countApp(appId: string): void {
    const record = this.apps.record(appId);
    if (record !== null) record.requests++;
  }

  /** The apps with the most requests since start, most first. */
  topApps(limit = 10): AppRequestCount[] {
    const top: AppRequestCount[] = [];
    for (const [appId, record] of this.apps.entries()) {
      const n = record.requests;
      if (appId === OTHER_APP || n === 0) continue;
      if (top.length === limit && n <= top[limit - 1].requests) continue;
      let i = top.length;
      while (i > 0 && top[i - 1].requests < n) i--;
      top.splice(i, 0, { appId, requests: n });
      if (top.length > limit) top.pop();
    }
    return top;
  }

  /** Requests accepted but not yet answered (every request is counted once in a response class when done). */
  get inFlight(): number {
    return this.requests - (this.responses2xx + this.responses3xx + this.responses4xx + this.responses5xx + this.responsesOther);
  }

  countResponse(status: number): void {
    if (status >= 200 && status < 300) this.responses2xx++;
    else if (status >= 500 && status < 600) this.responses5xx++;
    else if (status >= 400 && status < 500) this.responses4xx++;
    else if (status >= 300 && status < 400) this.responses3xx++;
    else this.responsesOther++;
  }

  /** The counters as plain data, posted by a worker thread of `--threads` to the first thread. */
  snapshot(): StatsSnapshot {
    return {
      requests: this.requests,
      responses: [this.responses2xx, this.responses3xx, this.responses4xx, this.responses5xx, this.responsesOther],
      badRequests: this.badRequests,
      badGateways: this.badGateways,
      clientAborts: this.clientAborts,
      retries: this.retries,
      connectionLimitRejections: this.connectionLimitRejections,
      pipeline: [this.pipelinedRequests, this.pipelineReplays, this.pipelineRefusals, this.pipelineStalls],
      slowConsumerEvents: this.slowConsumerEvents,
      latency: this.latency.snapshot(),
      apps: this.apps.snapshot(),
    };
  }

  /** Adds another thread's counters to these (used on a copy made for /varz and /metrics). */
  add(other: StatsSnapshot): void {
    this.requests += other.requests;
    this.responses2xx += other.responses[0];
    this.responses3xx += other.responses[1];
    this.responses4xx += other.responses[2];
    this.responses5xx += other.responses[3];
    this.responsesOther += other.responses[4];
    this.badRequests += other.badRequests;
    this.badGateways += other.badGateways;
    this.clientAborts += other.clientAborts;
    this.retries += other.retries;
    this.connectionLimitRejections += other.connectionLimitRejections;
    this.pipelinedRequests += other.pipeline[0];
    this.pipelineReplays += other.pipeline[1];
    this.pipelineRefusals += other.pipeline[2];
    this.pipelineStalls += other.pipeline[3];
    this.slowConsumerEvents += other.slowConsumerEvents;
    this.latency.add(other.latency);
    this.apps.add(other.apps);
  }
}

export interface StatsSnapshot {
  requests: number;
  /** 2xx, 3xx, 4xx, 5xx, other. */
  responses: [number, number, number, number, number];
  badRequests: number;
  badGateways: number;
  clientAborts: number;
  retries: number;
  connectionLimitRejections: number;
  /** Pipelined requests, replays, refusals, stalls. */
  pipeline: [number, number, number, number];
  slowConsumerEvents: number;
  latency: LatencySnapshot;
  apps: Array<[string, AppRecordSnapshot]>;
}
