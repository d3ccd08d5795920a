/**
 * Latency histogram with log-spaced buckets (about 4% wide) from 10 us to
 * ~15 min: recording is one Math.log and an increment, percentiles are read
 * from bucket bounds, and memory does not grow with traffic.
 */
const MIN_MS = 0.01;
const GROWTH = 1.04;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = Math.ceil(Math.log(900_000 / MIN_MS) / LOG_GROWTH) + 2;

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sumMs = 0;
  maxMs = 0;

  record(ms: number): void {
    let i = ms <= MIN_MS ? 0 : Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH);
    if (i >= BUCKETS) i = BUCKETS - 1;
    this.counts[i]++;
    this.count++;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  /** Upper bound of the bucket holding the p-th percentile (0 < p <= 100), in ms. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return i === BUCKETS - 1 ? this.maxMs : Math.min(MIN_MS * Math.pow(GROWTH, i), this.maxMs);
    }
    return this.maxMs;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sumMs = 0;
    this.maxMs = 0;
  }

  /** The histogram as plain data, to be posted from a worker thread and merged with add(). */
  snapshot(): LatencySnapshot {
    return { counts: Array.from(this.counts), count: this.count, sumMs: this.sumMs, maxMs: this.maxMs };
  }

  add(other: LatencySnapshot): void {
    const n = Math.min(other.counts.length, BUCKETS);
    for (let i = 0; i < n; i++) this.counts[i] += other.counts[i];
    this.count += other.count;
    this.sumMs += other.sumMs;
    if (other.maxMs > this.maxMs) this.maxMs = other.maxMs;
  }
}

export interface LatencySnapshot {
  counts: number[];
  count: number;
  sumMs: number;
  maxMs: number;
}
