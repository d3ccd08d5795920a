import t from 'tap';
import { bucketOf, HISTOGRAM_BOUNDS_MS, Samples } from './loadrun';

t.test('latency buckets: ten per decade from 0.1 ms to 10 s, then the overflow', async (t) => {
  t.equal(HISTOGRAM_BOUNDS_MS[0], 0.1);
  t.equal(HISTOGRAM_BOUNDS_MS.at(-1), 10_000);
  t.equal(bucketOf(0.05), 0);
  t.equal(bucketOf(0.1), 0, 'a bound belongs to its bucket');
  t.equal(HISTOGRAM_BOUNDS_MS[bucketOf(50)], 50.1);
  t.equal(bucketOf(20_000), HISTOGRAM_BOUNDS_MS.length, 'beyond the last bound');
});

t.test('exact percentiles by nearest rank', async (t) => {
  const samples = new Samples();
  t.same(samples.summary(), { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 });
  for (let i = 10_000; i >= 1; i--) samples.add(i / 10);
  t.same(samples.summary(), { p50: 500, p90: 900, p99: 990, max: 1000, mean: 500.05 });
});
