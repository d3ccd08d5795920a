import t from 'tap';
import { checkAutoscalePolicy, describePolicy } from './autoscale';

t.test('policies are checked field by field, in one line each', async (t) => {
  t.same(checkAutoscalePolicy({ min: 1, max: 4, target_rps: 50 }), { ok: true, value: { min: 1, max: 4, target_rps: 50 } });
  t.same(checkAutoscalePolicy({ min: 1, max: 4, target_p99_ms: 200, target_cpu: 70 }), { ok: true, value: { min: 1, max: 4, target_p99_ms: 200, target_cpu: 70 } });
  const error = (v: unknown) => {
    const r = checkAutoscalePolicy(v);
    return r.ok ? 'accepted' : r.error;
  };
  t.equal(error({ min: 0, max: 4, target_rps: 1 }), 'autoscale.min must be a whole number from 1 to 100');
  t.equal(error({ min: 3, max: 2, target_rps: 1 }), 'autoscale.max must be a whole number from min (3) to 100');
  t.equal(error({ min: 1, max: 2 }), 'autoscale needs a target: target_rps, target_p99_ms or target_cpu');
  t.equal(error({ min: 1, max: 2, target_rps: -5 }), 'autoscale.target_rps must be a number above 0 and at most 1000000 (requests per second per instance)');
  t.equal(error({ min: 1, max: 2, target_cpu: 150 }), 'autoscale.target_cpu must be a number above 0 and at most 100 (percent of one core per instance)');
  t.equal(error({ min: 1, max: 2, target_rsp: 5 }), 'autoscale: unknown field "target_rsp" (fields: min, max, target_rps, target_p99_ms, target_cpu)');
  t.equal(error([1, 2]), 'autoscale must be an object {min, max, target_rps?, target_p99_ms?, target_cpu?}');
  t.equal(describePolicy({ min: 1, max: 4, target_rps: 50, target_p99_ms: 200 }), '1-4 instances, 50 req/s per instance, p99 200 ms');
});
