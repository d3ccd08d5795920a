// One health manager acts at a time: a lease in a KV bucket, taken with
// compare-and-set on the entry's revision, renewed every pass and taken over
// once it expires. Every manager keeps watching the bus, so the one that takes
// over knows what the last one knew.

import type { KV, KvEntry } from 'nats';
import type { Bus } from '../../bus/connection';
import { openKv, isLive, isRevisionConflict } from '../../bus/jetstream';
import { HEALTH_BUCKET } from '../../bus/platform';

const LEASE_KEY = 'lease.analysis';

interface LeaseValue {
  holder: string;
  until: number;
}

/** An unreadable lease (hand-edited, truncated) counts as expired rather than stopping every manager. */
function readLease(entry: KvEntry): Partial<LeaseValue> {
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(entry.value));
    return typeof value === 'object' && value !== null ? (value as Partial<LeaseValue>) : {};
  } catch {
    return {};
  }
}

export class Lease {
  private constructor(
    private readonly kv: KV,
    readonly holder: string,
  ) {}

  static async open(bus: Bus, holder: string, timeoutMs = 10_000): Promise<Lease> {
    const js = bus.nats.jetstream({ timeout: timeoutMs });
    const kv = await openKv(js, HEALTH_BUCKET, { history: 1 });
    return new Lease(kv, holder);
  }

  /** True when this holder has the lease until `now + ttlMs`. */
  async acquire(now: number, ttlMs: number): Promise<boolean> {
    const value = new TextEncoder().encode(JSON.stringify({ holder: this.holder, until: now + ttlMs } satisfies LeaseValue));
    const entry = await this.kv.get(LEASE_KEY);
    try {
      if (!isLive(entry)) {
        await this.kv.create(LEASE_KEY, value);
        return true;
      }
      const current = readLease(entry);
      if (current.holder !== this.holder && typeof current.until === 'number' && current.until > now) return false;
      await this.kv.update(LEASE_KEY, value, entry.revision);
      return true;
    } catch (err) {
      if (isRevisionConflict(err)) return false;
      throw err;
    }
  }

  /** Gives the lease up (a manager stopping), so another need not wait it out. */
  async release(): Promise<void> {
    const entry = await this.kv.get(LEASE_KEY);
    if (!isLive(entry)) return;
    const current = readLease(entry);
    if (current.holder !== this.holder) return;
    try {
      await this.kv.delete(LEASE_KEY, { previousSeq: entry.revision });
    } catch (err) {
      if (!isRevisionConflict(err)) throw err;
    }
  }
}
