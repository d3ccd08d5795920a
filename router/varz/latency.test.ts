import t from 'tap';
import { LatencyHistogram } from './latency';

t.test('percentiles are within a bucket (4%) of the true values', async (t) => {
  const h = new LatencyHistogram();
  for (let i = 1; i <= 1000; i++) h.record(i / 10); // 0.1 .. 100 ms
  const near = (actual: number, expected: number) => Math.abs(actual - expected) / expected <= 0.05;
  t.ok(near(h.percentile(50), 50), `p50 ${h.percentile(50)}`);
  t.ok(near(h.percentile(99), 99), `p99 ${h.percentile(99)}`);
  t.equal(h.percentile(100), 100);
  t.equal(h.count, 1000);
  t.ok(near(h.sumMs / h.count, 50.05));
});

t.test('empty, tiny and huge values', async (t) => {
  const h = new LatencyHistogram();
  t.equal(h.percentile(99), 0);
  h.record(0);
  h.record(10_000_000);
  t.equal(h.percentile(100), 10_000_000);
  h.reset();
  t.equal(h.count, 0);
});
