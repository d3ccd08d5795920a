import t from 'tap';
import { UsageError } from './args';
import { policyFromFlags } from './autoscale';

t.test('policy flags: merged over a base policy, errors name the flag', async (t) => {
  t.equal(policyFromFlags({}), undefined, 'no policy flag: no policy');
  t.same(policyFromFlags({ min: 1, max: 4, 'target-rps': 50 }), { min: 1, max: 4, target_rps: 50 });
  t.same(policyFromFlags({ max: 6 }, { min: 1, max: 4, target_rps: 50 }), { min: 1, max: 6, target_rps: 50 }, 'one field over the current policy');
  t.throws(() => policyFromFlags({ 'target-rps': 50 }), new UsageError('an autoscale policy needs --min and --max'));
  t.throws(() => policyFromFlags({ min: 1, max: 4 }), new UsageError('an autoscale policy needs a target: --target-rps, --target-p99-ms or --target-cpu'));
  t.throws(() => policyFromFlags({ min: 3, max: 2, 'target-rps': 5 }), new UsageError('--max must be a whole number from min (3) to 100'));
  t.throws(() => policyFromFlags({ min: 1, max: 2, 'target-cpu': 500 }), new UsageError('--target-cpu must be a number above 0 and at most 100 (percent of one core per instance)'));
});
