// The login lockout of design.md (UAA's defaults): after 5 failed logins of
// one email within 5 minutes, further logins of that email are refused for 5
// minutes, even with the right password. Unknown emails are counted alike,
// so a lockout says nothing about whether an email exists.
//
// The count lives in the JetStream KV bucket skiff_logins (one key per email,
// emailKey), so every controller sees and adds to the same one; changes go
// through KV revisions. The bucket's max age lets entries vanish on their own;
// the times inside decide, so that only collects garbage.

import type { KV, KvEntry } from 'nats';
import type { Bus } from '../../bus/connection';
import { openKv, isLive, isRevisionConflict } from '../../bus/jetstream';
import { Buckets, ConflictError, emailKey } from './store';

export interface LockoutLimits {
  /** Failed logins of one email that lock it... */
  maxFailures: number;
  /** ...when they fall within this many seconds... */
  windowSeconds: number;
  /** ...for this many seconds. */
  lockSeconds: number;
}

/** UAA's defaults, binding in design.md. */
export const LOCKOUT_DEFAULTS: Readonly<LockoutLimits> = Object.freeze({ maxFailures: 5, windowSeconds: 300, lockSeconds: 300 });

export type LockState = { locked: false } | { locked: true; retryAfterSeconds: number };

interface LoginRecord {
  /** Epoch ms of the failures within the window, oldest first. */
  failures: number[];
  /** Epoch ms; null while not locked. */
  locked_until: number | null;
}

const CAS_ATTEMPTS = 20;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class LoginLockout {
  private constructor(
    private readonly kv: KV,
    readonly limits: Readonly<LockoutLimits>,
    private readonly now: () => number,
  ) {}

  /** `now` (epoch ms) is for tests. */
  static async open(bus: Bus, limits: Readonly<LockoutLimits> = LOCKOUT_DEFAULTS, now: () => number = Date.now, timeoutMs = 10_000): Promise<LoginLockout> {
    const js = bus.nats.jetstream({ timeout: timeoutMs });
    const kv = await openKv(js, Buckets.logins, { history: 1, ttl: (limits.windowSeconds + limits.lockSeconds) * 1000 });
    return new LoginLockout(kv, limits, now);
  }

  /** Whether logins of `email` (normalized) are refused now, and for how long still. */
  async check(email: string): Promise<LockState> {
    const entry = await this.kv.get(emailKey(email));
    return isLive(entry) ? this.state(parse(entry), this.now()) : { locked: false };
  }

  /** Counts a failed login; the state after it (locked when it was the last one allowed). */
  async failed(email: string): Promise<LockState> {
    const key = emailKey(email);
    const windowMs = this.limits.windowSeconds * 1000;
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await this.kv.get(key);
      const before = isLive(entry) ? parse(entry) : undefined;
      const now = this.now();
      if (before !== undefined) {
        const state = this.state(before, now);
        if (state.locked) return state;
      }
      const failures = (before?.failures ?? []).filter((time) => time > now - windowMs);
      failures.push(now);
      const after: LoginRecord =
        failures.length >= this.limits.maxFailures ? { failures: [], locked_until: now + this.limits.lockSeconds * 1000 } : { failures, locked_until: null };
      try {
        const value = encoder.encode(JSON.stringify(after));
        if (entry !== null) await this.kv.update(key, value, entry.revision);
        else await this.kv.create(key, value);
        return this.state(after, now);
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
      }
    }
    throw new ConflictError('too many concurrent logins of this email, try again');
  }

  /** A successful login (or a new password): the failures so far no longer count. */
  async cleared(email: string): Promise<void> {
    const key = emailKey(email);
    if (isLive(await this.kv.get(key))) await this.kv.delete(key);
  }

  private state(record: LoginRecord, now: number): LockState {
    if (record.locked_until === null || record.locked_until <= now) return { locked: false };
    return { locked: true, retryAfterSeconds: Math.max(1, Math.ceil((record.locked_until - now) / 1000)) };
  }
}

function parse(entry: KvEntry): LoginRecord {
  const value = JSON.parse(decoder.decode(entry.value)) as Partial<LoginRecord>;
  return {
    failures: Array.isArray(value.failures) ? value.failures.filter((time): time is number => typeof time === 'number') : [],
    locked_until: typeof value.locked_until === 'number' ? value.locked_until : null,
  };
}
