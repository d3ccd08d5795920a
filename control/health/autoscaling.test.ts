import t from 'tap';
import { decide, type DecideInput } from './autoscaling';

const policy = { min: 1, max: 4, target_rps: 50 };
const base: DecideInput = { policy, desired: 1, running: 1, figures: { rps: 0 }, now: 100_000, scaleInDelayMs: 5000, memo: {} };

t.test('scales out at once to what the request rate needs, within max', async (t) => {
  const d = decide({ ...base, figures: { rps: 160 } });
  t.same(d.kind === 'scale' && [d.to, d.reason], [4, '160 req/s per instance > 50']);
  const small = decide({ ...base, figures: { rps: 60 } });
  t.same(small.kind === 'scale' && small.to, 2, 'just over: one more');
  const capped = decide({ ...base, figures: { rps: 5000 } });
  t.same(capped.kind === 'scale' && capped.to, 4, 'never beyond max');
  const atMax = decide({ ...base, desired: 4, running: 4, figures: { rps: 5000 } });
  t.equal(atMax.kind, 'hold');
  t.match(atMax.kind === 'hold' && atMax.why, /at the policy's max \(4\): 1250 req\/s per instance > 50/);
});

t.test('one decision at a time: nothing while the last change is still coming up', async (t) => {
  const d = decide({ ...base, desired: 3, running: 1, figures: { rps: 1000 } });
  t.same(d.kind === 'hold' && d.why, 'waiting for 2 of 3 instances to run');
});

t.test('scales in only after the delay, to the largest count needed meanwhile', async (t) => {
  let memo = {};
  const look = (now: number, rps: number) => {
    const d = decide({ ...base, desired: 4, running: 4, figures: { rps }, now, memo });
    memo = d.memo;
    return d;
  };
  t.equal(look(0, 10).kind, 'hold', 'below the targets: the clock starts');
  t.equal(look(2000, 90).kind, 'hold', 'needs 2 now');
  t.equal(look(4000, 0).kind, 'hold');
  const d = look(5000, 0);
  t.same(d.kind === 'scale' && [d.to, d.reason], [2, '0 req/s per instance < 50 for 5 s'], 'down to 2, the most any look needed');
  t.same(d.memo, {}, 'a decision starts over');
  t.same(look(6000, 0).kind, 'hold', 'the next scale-in waits a delay again');
});

t.test('a burst in the window starts the scale-in clock over', async (t) => {
  const first = decide({ ...base, desired: 2, running: 2, figures: { rps: 0 }, now: 0 });
  const burst = decide({ ...base, desired: 2, running: 2, figures: { rps: 300 }, now: 3000, memo: first.memo });
  t.equal(burst.kind, 'scale');
  const within = decide({ ...base, desired: 2, running: 2, figures: { rps: 80 }, now: 6000, memo: first.memo });
  t.same(within.kind === 'hold' && within.why, 'within the targets', 'at the target: stays');
  t.same(within.memo, {});
});

t.test('never below min; no figures, no decision', async (t) => {
  const d = decide({ ...base, policy: { ...policy, min: 2 }, desired: 2, running: 2, figures: { rps: 0 }, now: 0, scaleInDelayMs: 0 });
  t.same(d.kind === 'hold' && d.why, 'within the targets');
  const none = decide({ ...base, figures: {} });
  t.same(none.kind === 'hold' && none.why, 'no figures yet from the routers and DEAs');
  const outside = decide({ ...base, desired: 6, running: 6 });
  t.same(outside.kind === 'scale' && outside.to, 4, 'a count outside the policy is brought into it');
});

t.test('p99 and CPU targets', async (t) => {
  const slow = decide({ ...base, policy: { min: 1, max: 5, target_p99_ms: 200 }, desired: 2, running: 2, figures: { rps: 10, p99Ms: 450 } });
  t.same(slow.kind === 'scale' && [slow.to, slow.reason], [3, 'p99 450 ms > 200'], 'latency: one more at a time');
  const fast = decide({ ...base, policy: { min: 1, max: 5, target_p99_ms: 200 }, desired: 2, running: 2, figures: { rps: 10, p99Ms: 20 }, scaleInDelayMs: 0 });
  t.same(fast.kind === 'scale' && fast.to, 1, 'far below the latency target: one fewer');
  const near = decide({ ...base, policy: { min: 1, max: 5, target_p99_ms: 200 }, desired: 2, running: 2, figures: { rps: 10, p99Ms: 150 }, scaleInDelayMs: 0 });
  t.equal(near.kind, 'hold', 'near the latency target: stays');
  const idle = decide({ ...base, policy: { min: 1, max: 5, target_p99_ms: 200 }, desired: 2, running: 2, figures: { rps: 0 }, scaleInDelayMs: 0 });
  t.same(idle.kind === 'scale' && idle.to, 1, 'no request at all: one fewer');
  const busy = decide({ ...base, policy: { min: 1, max: 8, target_cpu: 50 }, desired: 2, running: 2, figures: { cpu: 230 } });
  t.same(busy.kind === 'scale' && [busy.to, busy.reason], [5, 'CPU 115% per instance > 50%']);
  const both = decide({ ...base, policy: { min: 1, max: 8, target_rps: 100, target_cpu: 50 }, desired: 2, running: 2, figures: { rps: 150, cpu: 40 }, scaleInDelayMs: 0 });
  t.equal(both.kind, 'hold', 'scale in only when every target allows it: rps needs 2');
});
