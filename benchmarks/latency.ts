// A small fixed-bucket latency histogram (10 us buckets up to 10 s), so that
// percentiles are finer than autocannon's whole-millisecond histogram.

const BUCKET_MS = 0.01;
const BUCKETS = 1_000_000; // 10 s

export class LatencyHistogram {
  private readonly counts = new Uint32Array(BUCKETS + 1);
  private n = 0;

  record(ms: number): void {
    let i = Math.floor(ms / BUCKET_MS);
    if (!(i >= 0)) i = 0;
    if (i > BUCKETS) i = BUCKETS;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.n++;
  }

  /** The raw bucket counts (to send to another thread). */
  rawCounts(): Uint32Array {
    return this.counts;
  }

  /** Adds another histogram's bucket counts (same bucket layout). */
  addCounts(other: Uint32Array): void {
    const n = Math.min(other.length, this.counts.length);
    for (let i = 0; i < n; i++) {
      const v = other[i] as number;
      if (v !== 0) {
        this.counts[i] = (this.counts[i] ?? 0) + v;
        this.n += v;
      }
    }
  }

  get count(): number {
    return this.n;
  }

  /** Upper edge of the bucket holding the p-th percentile, in ms (NaN when empty). */
  percentile(p: number): number {
    if (this.n === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    for (let i = 0; i <= BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return (i + 1) * BUCKET_MS;
    }
    return BUCKETS * BUCKET_MS;
  }
}
