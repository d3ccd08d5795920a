import { LatencyHistogram } from './latency';

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

  countResponse(status: number): void {
    if (status >= 200 && status < 300) this.responses2xx++;
    else if (status >= 500 && status < 600) this.responses5xx++;
    else if (status >= 400 && status < 500) this.responses4xx++;
    else if (status >= 300 && status < 400) this.responses3xx++;
    else this.responsesOther++;
  }
}
