// One load run of `skiff bench`: autocannon (the library, in this process)
// against a URL, with what autocannon's own result lacks for a report: a
// latency histogram and the requests of each second, counted from its
// per-response events, and exact percentiles. Totals, errors and status
// codes are autocannon's.

import { performance } from 'node:perf_hooks';

/** Upper bounds (ms) of the latency histogram: ten per decade from 0.1 ms to 10 s, then the rest. */
export const HISTOGRAM_BOUNDS_MS: readonly number[] = (() => {
  const bounds: number[] = [];
  for (let exponent = -1; exponent < 4; exponent++) {
    for (let step = 0; step < 10; step++) bounds.push(Number((10 ** (exponent + step / 10)).toPrecision(3)));
  }
  bounds.push(10_000);
  return bounds;
})();

/** Index of the bucket a latency falls in: the first bound not below it, else the overflow bucket. */
export function bucketOf(latencyMs: number, bounds: readonly number[] = HISTOGRAM_BOUNDS_MS): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (bounds[mid]! < latencyMs) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Response times kept whole, for exact percentiles: autocannon's own are
 * whole milliseconds, which turns every answer of a fast app into "0 ms".
 * 8 bytes a response: a minute at 20k req/s is under 10 MB.
 */
export class Samples {
  private values = new Float64Array(4096);
  length = 0;

  add(value: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = value;
  }

  /** p50, p90, p99 (nearest rank), max and mean, in the unit added; zeros when empty. */
  summary(): { p50: number; p90: number; p99: number; max: number; mean: number } {
    if (this.length === 0) return { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
    const sorted = this.values.slice(0, this.length).sort();
    const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
    let sum = 0;
    for (const v of sorted) sum += v;
    return { p50: round(rank(50), 3), p90: round(rank(90), 3), p99: round(rank(99), 3), max: round(sorted[sorted.length - 1]!, 3), mean: round(sum / sorted.length, 3) };
  }
}

export interface RunStats {
  url: string;
  connections: number;
  /** Seconds the run lasted. */
  duration: number;
  /** Responses received. */
  requests: number;
  /** Mean responses per second. */
  rps: number;
  latency_ms: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Bytes received (headers and bodies), in all and per second. */
  bytes: number;
  throughput_bytes_per_s: number;
  /** Connection errors and timeouts (timeouts are counted in errors too, as autocannon does). */
  errors: number;
  timeouts: number;
  non_2xx: number;
  status_codes: Record<string, number>;
  /** Per second of the run: responses and non-2xx among them. */
  timeline: Array<{ second: number; requests: number; non_2xx: number }>;
  /** Responses per latency bucket; `bounds_ms[i]` is bucket i's upper bound, the last bucket is beyond the last bound. */
  histogram: { bounds_ms: number[]; counts: number[] };
}

export interface LoadOptions {
  url: string;
  /** The Host header (the app's route when the URL names the router's address). */
  host: string;
  connections: number;
  durationS: number;
  /** Called about once a second while it runs. */
  onProgress?: (p: { elapsedS: number; requests: number; lastSecond: number; errors: number; non2xx: number }) => void;
}

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  throughput: { total: number; average: number };
  statusCodeStats: Record<string, { count: number }>;
}

interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): void;
  on(event: 'reqError', listener: (error: Error) => void): void;
  stop(): void;
}

type Autocannon = (options: Record<string, unknown>, done: (error: Error | null, result: AutocannonResult) => void) => AutocannonInstance;

/** Runs the load; resolves when it is over. */
export function runLoad(options: LoadOptions): Promise<RunStats> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const autocannon = require('autocannon') as Autocannon;
  const counts = new Array<number>(HISTOGRAM_BOUNDS_MS.length + 1).fill(0);
  const samples = new Samples();
  const perSecond: number[] = [];
  const non2xxPerSecond: number[] = [];
  let responses = 0;
  let errors = 0;
  let non2xx = 0;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let progress: NodeJS.Timeout | undefined;
    const instance = autocannon(
      {
        url: options.url,
        headers: { host: options.host },
        connections: options.connections,
        duration: options.durationS,
        // A slow app's answer is a result, not an error: wait as long as the run may last.
        timeout: Math.max(10, options.durationS),
      },
      (error, result) => {
        clearInterval(progress);
        if (error) {
          reject(error);
          return;
        }
        const duration = result.duration;
        const statusCodes: Record<string, number> = {};
        for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = count;
        const seconds = Math.max(perSecond.length, options.durationS);
        resolve({
          url: options.url,
          connections: options.connections,
          duration,
          requests: responses,
          rps: round(duration > 0 ? responses / duration : 0, 1),
          latency_ms: samples.summary(),
          bytes: result.throughput.total,
          throughput_bytes_per_s: Math.round(duration > 0 ? result.throughput.total / duration : 0),
          errors: result.errors,
          timeouts: result.timeouts,
          non_2xx: result.non2xx,
          status_codes: statusCodes,
          timeline: Array.from({ length: seconds }, (_, i) => ({ second: i + 1, requests: perSecond[i] ?? 0, non_2xx: non2xxPerSecond[i] ?? 0 })),
          histogram: { bounds_ms: [...HISTOGRAM_BOUNDS_MS], counts },
        });
      },
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      responses++;
      counts[bucketOf(responseTime)]!++;
      samples.add(responseTime);
      // The last responses arrive a moment after the run's end: they belong to its last second.
      const second = Math.min(options.durationS - 1, Math.floor((performance.now() - started) / 1000));
      perSecond[second] = (perSecond[second] ?? 0) + 1;
      if (statusCode < 200 || statusCode > 299) {
        non2xx++;
        non2xxPerSecond[second] = (non2xxPerSecond[second] ?? 0) + 1;
      }
    });
    instance.on('reqError', () => errors++);
    if (options.onProgress !== undefined) {
      const report = options.onProgress;
      progress = setInterval(() => {
        const elapsed = (performance.now() - started) / 1000;
        const last = perSecond[Math.floor(elapsed) - 1] ?? 0;
        report({ elapsedS: elapsed, requests: responses, lastSecond: last, errors, non2xx });
      }, 1000);
    }
  });
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
