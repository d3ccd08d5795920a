// The common shape of a load generator and of one measurement.

import type { BenchCase } from './cases';

export interface LoadSpec {
  port: number;
  benchCase: BenchCase;
  durationS: number;
}

export interface Measurement {
  /** Completed requests (any status); ws-echo: round trips completed in the window. */
  requests: number;
  /** Operations the proxy worked on while its CPU was read, when not `requests`
   * (ws-echo: also the echoes that came back while draining after the window). */
  cpuOps?: number;
  /** Measured wall time in seconds. */
  durationS: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  /** Responses with a status outside 2xx (wrk: status >= 400). */
  non2xx: number;
  /** Connect/read/write errors, timeouts and body mismatches. */
  errors: number;
  /** Loader-specific detail kept in the JSON results. */
  detail: Record<string, unknown>;
}

export interface Loader {
  name: 'autocannon' | 'wrk';
  version: string;
  run(spec: LoadSpec): Promise<Measurement>;
}

export type LoaderName = Loader['name'];
