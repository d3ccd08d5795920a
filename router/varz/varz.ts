import { LatencyHistogram } from './latency';

/** Distinct app ids counted one by one; beyond, requests go to `otherAppRequests` (bounded memory). */
const MAX_COUNTED_APPS = 10_000;

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
  registerMessages = 0;
  unregisterMessages = 0;
  slowConsumerEvents = 0;
  readonly latency = new LatencyHistogram();
  /** Requests that reached an app instance, per app id (a holder per app: one lookup per request). */
  private readonly appRequests = new Map<string, { n: number }>();
  /** Requests of apps beyond MAX_COUNTED_APPS. */
  otherAppRequests = 0;

  countApp(appId: string): void {
    if (appId === '') return;
    const counter = this.appRequests.get(appId);
    if (counter !== undefined) counter.n++;
    else if (this.appRequests.size < MAX_COUNTED_APPS) this.appRequests.set(appId, { n: 1 });
    else this.otherAppRequests++;
  }

  /** The apps with the most requests since start, most first. */
  topApps(limit = 10): AppRequestCount[] {
    const top: AppRequestCount[] = [];
    for (const [appId, counter] of this.appRequests) {
      if (top.length === limit && counter.n <= top[limit - 1].requests) continue;
      let i = top.length;
      while (i > 0 && top[i - 1].requests < counter.n) i--;
      top.splice(i, 0, { appId, requests: counter.n });
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
}
