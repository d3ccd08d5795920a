// The autoscaler's decision for one app at one look: from its policy, its
// desired and running instances and the figures the routers and DEAs report
// (request rate and p99 through the routers, CPU of its instances), scale
// out at once to what the figures need, scale in only once they have stayed
// below the targets for `autoscale.scale_in_delay` (to the largest count
// any look in that time needed, as Kubernetes' HPA stabilises), one change
// at a time: nothing is decided while instances of the last change are
// still coming up. Pure: times and figures are passed in.

import type { AutoscalePolicy } from '../../bus/autoscale';

export interface AppFigures {
  /** Requests per second through all routers, over the recent window; undefined: no figures. */
  rps?: number;
  /** p99 latency in ms over the window; undefined when no request was measured. */
  p99Ms?: number;
  /** CPU of all running instances, percent of one core. */
  cpu?: number;
}

/** What the autoscaler remembers of an app between looks. */
export interface AppMemo {
  /** ms since which every look found the figures below the targets. */
  belowSince?: number;
  /** The largest count those looks needed: what a scale-in may go down to. */
  floor?: number;
}

export interface DecideInput {
  policy: AutoscalePolicy;
  /** The app's desired instances. */
  desired: number;
  /** Running instances of its current version among those. */
  running: number;
  figures: AppFigures;
  now: number;
  scaleInDelayMs: number;
  memo: AppMemo;
}

export type Decision =
  | { kind: 'hold'; why: string; memo: AppMemo }
  | { kind: 'scale'; to: number; reason: string; memo: AppMemo };

/** With only a p99 target, a scale-in needs p99 below this share of it (latency does not say how many instances are enough). */
export const P99_SCALE_IN_SHARE = 0.5;

const fmt = (x: number) => (x >= 100 ? String(Math.round(x)) : String(Number(x.toFixed(1))));

export function decide({ policy, desired, running, figures, now, scaleInDelayMs, memo }: DecideInput): Decision {
  const clamp = (n: number) => Math.min(policy.max, Math.max(policy.min, n));
  if (desired < policy.min || desired > policy.max) {
    return { kind: 'scale', to: clamp(desired), reason: `outside the policy's ${policy.min}-${policy.max}`, memo: {} };
  }
  if (running < desired) return { kind: 'hold', why: `waiting for ${desired - running} of ${desired} instances to run`, memo: {} };
  const { rps, p99Ms, cpu } = figures;
  const over: string[] = [];
  let need = 0;
  let known = false;
  if (policy.target_rps !== undefined && rps !== undefined) {
    known = true;
    const perInstance = rps / desired;
    need = Math.max(need, Math.ceil(rps / policy.target_rps));
    if (perInstance > policy.target_rps) over.push(`${fmt(perInstance)} req/s per instance > ${policy.target_rps}`);
  }
  if (policy.target_cpu !== undefined && cpu !== undefined) {
    known = true;
    const perInstance = cpu / desired;
    need = Math.max(need, Math.ceil(cpu / policy.target_cpu));
    if (perInstance > policy.target_cpu) over.push(`CPU ${fmt(perInstance)}% per instance > ${policy.target_cpu}%`);
  }
  if (policy.target_p99_ms !== undefined) {
    const latencyOnly = policy.target_rps === undefined && policy.target_cpu === undefined;
    if (p99Ms !== undefined) {
      known = true;
      if (p99Ms > policy.target_p99_ms) {
        over.push(`p99 ${fmt(p99Ms)} ms > ${policy.target_p99_ms}`);
        need = Math.max(need, desired + 1);
      } else if (p99Ms >= policy.target_p99_ms * P99_SCALE_IN_SHARE) {
        // Near its target, latency holds the count where it is.
        need = Math.max(need, desired);
      } else if (latencyOnly) {
        need = Math.max(need, desired - 1);
      }
    } else if (latencyOnly && rps === 0) {
      // No request at all in the window: nothing to measure, and nothing to serve.
      known = true;
      need = Math.max(need, desired - 1);
    }
  }
  if (!known) return { kind: 'hold', why: 'no figures yet from the routers and DEAs', memo: {} };

  if (over.length > 0) {
    const to = clamp(Math.max(need, desired + 1));
    if (to <= desired) return { kind: 'hold', why: `at the policy's max (${policy.max}): ${over.join('; ')}`, memo: {} };
    return { kind: 'scale', to, reason: over.join('; '), memo: {} };
  }

  const candidate = clamp(need);
  if (candidate >= desired) return { kind: 'hold', why: 'within the targets', memo: {} };
  const belowSince = memo.belowSince ?? now;
  const floor = Math.max(memo.floor ?? candidate, candidate);
  const next: AppMemo = { belowSince, floor };
  const waited = now - belowSince;
  if (waited < scaleInDelayMs) {
    return { kind: 'hold', why: `below the targets for ${fmt(waited / 1000)} of ${fmt(scaleInDelayMs / 1000)} s before scaling in`, memo: next };
  }
  return { kind: 'scale', to: floor, reason: `${belowWhat(policy, figures, desired)} for ${fmt(scaleInDelayMs / 1000)} s`, memo: {} };
}

/** "3 req/s per instance < 50": the figures that allowed a scale-in. */
function belowWhat(policy: AutoscalePolicy, { rps, p99Ms, cpu }: AppFigures, desired: number): string {
  const parts: string[] = [];
  if (policy.target_rps !== undefined && rps !== undefined) parts.push(`${fmt(rps / desired)} req/s per instance < ${policy.target_rps}`);
  if (policy.target_cpu !== undefined && cpu !== undefined) parts.push(`CPU ${fmt(cpu / desired)}% per instance < ${policy.target_cpu}%`);
  if (policy.target_p99_ms !== undefined && p99Ms !== undefined) parts.push(`p99 ${fmt(p99Ms)} ms < ${policy.target_p99_ms}`);
  return parts.join('; ');
}
