// The autoscale policy of an app (design.md, Autoscaling and load runs) and
// the request by which the health manager's autoscaler asks a controller to
// scale. The policy is kept in the app's record (`autoscale`), so the
// controller, the health manager (which reads the apps bucket) and the CLI
// (flags, manifest.yml) check it with the same rules.

import { AppBounds } from './platform';

export interface AutoscalePolicy {
  min: number;
  max: number;
  /** Requests per second per running instance, from the routers. */
  target_rps?: number;
  /** p99 latency (time to last byte) through the routers, milliseconds. */
  target_p99_ms?: number;
  /** CPU per running instance, percent of one core, from the DEAs. */
  target_cpu?: number;
}

export const AUTOSCALE_TARGETS = ['target_rps', 'target_p99_ms', 'target_cpu'] as const;

/** Bounds of the targets; beyond them a number is a typo rather than a policy. */
export const AutoscaleBounds = {
  maxRps: 1_000_000,
  maxP99Ms: 600_000,
  maxCpu: 100,
} as const;

export type PolicyCheck = { ok: true; value: AutoscalePolicy } | { ok: false; error: string };

/** A policy from JSON (REST body, manifest); errors name the field and its rule. */
export function checkAutoscalePolicy(value: unknown, where = 'autoscale'): PolicyCheck {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: `${where} must be an object {min, max, target_rps?, target_p99_ms?, target_cpu?}` };
  }
  const v = value as Record<string, unknown>;
  const known = new Set<string>(['min', 'max', ...AUTOSCALE_TARGETS]);
  const unknown = Object.keys(v).find((key) => !known.has(key));
  if (unknown !== undefined) return { ok: false, error: `${where}: unknown field ${JSON.stringify(unknown)} (fields: min, max, ${AUTOSCALE_TARGETS.join(', ')})` };
  const whole = (x: unknown) => typeof x === 'number' && Number.isInteger(x);
  if (!whole(v.min) || (v.min as number) < 1 || (v.min as number) > AppBounds.maxInstances) {
    return { ok: false, error: `${where}.min must be a whole number from 1 to ${AppBounds.maxInstances}` };
  }
  if (!whole(v.max) || (v.max as number) < (v.min as number) || (v.max as number) > AppBounds.maxInstances) {
    return { ok: false, error: `${where}.max must be a whole number from min (${v.min as number}) to ${AppBounds.maxInstances}` };
  }
  const policy: AutoscalePolicy = { min: v.min as number, max: v.max as number };
  const target = (key: (typeof AUTOSCALE_TARGETS)[number], max: number, unit: string): string | undefined => {
    const x = v[key];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0 || x > max) return `${where}.${key} must be a number above 0 and at most ${max}${unit}`;
    policy[key] = x;
    return undefined;
  };
  const error = target('target_rps', AutoscaleBounds.maxRps, ' (requests per second per instance)') ?? target('target_p99_ms', AutoscaleBounds.maxP99Ms, ' (milliseconds)') ?? target('target_cpu', AutoscaleBounds.maxCpu, ' (percent of one core per instance)');
  if (error !== undefined) return { ok: false, error };
  if (AUTOSCALE_TARGETS.every((key) => policy[key] === undefined)) {
    return { ok: false, error: `${where} needs a target: target_rps, target_p99_ms or target_cpu` };
  }
  return { ok: true, value: policy };
}

/** "1-4 instances, 50 req/s per instance, p99 200 ms": for events and `skiff autoscale`. */
export function describePolicy(policy: AutoscalePolicy): string {
  const parts = [`${policy.min}-${policy.max} instances`];
  if (policy.target_rps !== undefined) parts.push(`${policy.target_rps} req/s per instance`);
  if (policy.target_p99_ms !== undefined) parts.push(`p99 ${policy.target_p99_ms} ms`);
  if (policy.target_cpu !== undefined) parts.push(`CPU ${policy.target_cpu}% per instance`);
  return parts.join(', ');
}

/**
 * Health manager (the lease holder) -> controllers, queue group `cc`, a
 * request: scale the app from `from` to `to` instances for `reason`. The
 * controller checks the app is still as the autoscaler saw it (same
 * desired count, a policy, started), caps `to` at the owner's memory limit
 * and what the DEAs have free, scales, records the event
 * `autoscaled` with the reason (and the cap), and answers AutoscaleReply.
 */
export const AUTOSCALE_SUBJECT = 'cloudcontrollers.autoscale';

export interface AutoscaleRequest {
  droplet: string;
  from: number;
  to: number;
  /** "480 req/s per instance > 200": why, in the event. */
  reason: string;
}

export type AutoscaleReply =
  | { ok: true; instances: number; capped?: string }
  | { ok: false; error: string };
