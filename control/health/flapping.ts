// The crash counter of one index of one app version, and what it means for
// the next restart (protocol.md, Cloud Foundry v1's health manager): up to
// `flapping_death` crashes restart at once; beyond, the index is flapping and
// each restart waits min(max_restart_delay, min_restart_delay << (crashes - 2))
// plus a little jitter; beyond `giveup_crash_number` crashes nothing restarts
// it until the app changes (a new key) or `flapping_timeout` passes without a
// crash. Pure: times are passed in, randomness too.

import type { HealthSettings } from './settings';

export interface CrashCount {
  crashes: number;
  /** ms of the crash that made the index flapping; undefined while it is not. */
  flappingSince: number | undefined;
  lastCrashAt: number;
  /** ms from which a restart may be asked for; Infinity once given up. */
  restartAt: number;
}

/** Jitter is "a few seconds" (protocol.md), and never more than a tenth of the delay, so tiny test delays stay tiny. */
const MAX_JITTER_MS = 5000;

type Rules = Pick<HealthSettings, 'flappingTimeoutMs' | 'flappingDeath' | 'minRestartDelayMs' | 'maxRestartDelayMs' | 'giveupCrashNumber'>;

/** Delay before the restart that follows crash number `crashes` of a flapping index, without jitter. */
export function backoffMs(crashes: number, rules: Rules): number {
  // `<<` on seconds, as in CF v1, but on possibly fractional milliseconds and without 32-bit overflow.
  const doubled = rules.minRestartDelayMs * 2 ** Math.max(0, crashes - 2);
  return Math.min(rules.maxRestartDelayMs, doubled);
}

export function jitterMs(delayMs: number, random: () => number): number {
  return random() * Math.min(MAX_JITTER_MS, delayMs / 10);
}

/** A count older than the flapping window no longer counts. */
export function isExpired(count: CrashCount, now: number, rules: Pick<Rules, 'flappingTimeoutMs'>): boolean {
  return now - count.lastCrashAt > rules.flappingTimeoutMs;
}

export function recordCrash(previous: CrashCount | undefined, now: number, rules: Rules, random: () => number = Math.random): CrashCount {
  const crashes = previous === undefined || isExpired(previous, now, rules) ? 1 : previous.crashes + 1;
  const flapping = crashes > rules.flappingDeath;
  let restartAt = now;
  if (crashes > rules.giveupCrashNumber) restartAt = Infinity;
  else if (flapping) {
    const delay = backoffMs(crashes, rules);
    restartAt = now + delay + jitterMs(delay, random);
  }
  return {
    crashes,
    flappingSince: flapping ? (previous?.flappingSince !== undefined && crashes > 1 ? previous.flappingSince : now) : undefined,
    lastCrashAt: now,
    restartAt,
  };
}

export function isFlapping(count: CrashCount | undefined): boolean {
  return count !== undefined && count.flappingSince !== undefined;
}

export function hasGivenUp(count: CrashCount | undefined): boolean {
  return count !== undefined && count.restartAt === Infinity;
}
