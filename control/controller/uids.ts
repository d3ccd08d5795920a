// One unprivileged uid per app (design.md, "Tenancy and the bus"), from the
// controller's `--app-uids` range, kept in the KV bucket skiff_app_uids:
//
// - `uid.<n>`: taken by the app whose id is the value ({"app","since"}).
//   Taken with kv.create, which fails when the key is live, so two
//   controllers side by side never hand out one uid twice.
// - `cursor`: a sequence that only moves forward (compare-and-set), from a
//   random start; the next candidate is `first + cursor mod size`. A freed uid is therefore handed
//   out again only once the whole range has gone round: what its old app
//   left (a crashed instance's files, kept for an hour on its DEA) must not
//   fall to a new app soon after a delete.

import { randomInt } from 'node:crypto';
import type { KV, KvEntry } from 'nats';
import type { Bus } from '../../bus/connection';
import { openKv, isLive, isRevisionConflict, liveKeys } from '../../bus/jetstream';
import { formatRange, type IdRange } from '../../bus/uids';
import { Buckets } from './store';

const CURSOR_KEY = 'cursor';
/** Candidates tried one by one from the cursor before the taken keys are listed (a crowded range). */
const PROBES_BEFORE_LISTING = 16;
const CAS_ATTEMPTS = 20;

export function uidKey(uid: number): string {
  return `uid.${uid}`;
}

export class UidsExhaustedError extends Error {
  override name = 'UidsExhaustedError';
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class AppUids {
  private constructor(
    private readonly kv: KV,
    readonly range: IdRange,
  ) {}

  static async open(bus: Bus, range: IdRange, timeoutMs = 10_000): Promise<AppUids> {
    const js = bus.nats.jetstream({ timeout: timeoutMs });
    return new AppUids(await openKv(js, Buckets.appUids, { history: 1 }), range);
  }

  get size(): number {
    return this.range.last - this.range.first + 1;
  }

  /** Takes a free uid of the range for the app; UidsExhaustedError when none is left. */
  async allocate(appId: string): Promise<number> {
    const value = encoder.encode(JSON.stringify({ app: appId, since: Math.floor(Date.now() / 1000) }));
    const start = await this.cursor();
    const candidate = (step: number) => this.range.first + ((start + step) % this.size);
    const probes = Math.min(PROBES_BEFORE_LISTING, this.size);
    for (let step = 0; step < probes; step++) {
      const uid = candidate(step);
      if (await this.take(uid, value)) {
        await this.advance(start + step + 1);
        return uid;
      }
    }
    const taken = await this.taken();
    for (let step = probes; step < this.size; step++) {
      const uid = candidate(step);
      if (taken.has(uid)) continue;
      if (await this.take(uid, value)) {
        await this.advance(start + step + 1);
        return uid;
      }
    }
    throw new UidsExhaustedError(`no free app uid left in ${formatRange(this.range)} (--app-uids): delete apps or widen the range`);
  }

  /** Gives the uid back, if the app still holds it. */
  async free(uid: number, appId: string): Promise<void> {
    const key = uidKey(uid);
    const entry = await this.kv.get(key);
    if (!isLive(entry) || this.holderOf(entry) !== appId) return;
    try {
      await this.kv.delete(key, { previousSeq: entry.revision });
    } catch (err) {
      if (!isRevisionConflict(err)) throw err;
    }
  }

  /** The app id holding the uid, if any. */
  async holder(uid: number): Promise<string | undefined> {
    const entry = await this.kv.get(uidKey(uid));
    return isLive(entry) ? this.holderOf(entry) : undefined;
  }

  private holderOf(entry: KvEntry): string | undefined {
    try {
      const value = JSON.parse(decoder.decode(entry.value)) as { app?: unknown };
      return typeof value.app === 'string' ? value.app : undefined;
    } catch {
      return undefined;
    }
  }

  private async take(uid: number, value: Uint8Array): Promise<boolean> {
    try {
      await this.kv.create(uidKey(uid), value);
      return true;
    } catch (err) {
      if (isRevisionConflict(err)) return false;
      throw err;
    }
  }

  private async cursor(): Promise<number> {
    const entry = await this.kv.get(CURSOR_KEY);
    const n = isLive(entry) ? Number(decoder.decode(entry.value)) : Number.NaN;
    // A new platform starts at a random place of the range, so two platforms on one host
    // with the same range rarely hand out the same uids (as the DEA does with ports).
    return Number.isSafeInteger(n) && n >= 0 ? n : randomInt(0, this.size);
  }

  /** Moves the cursor to `to` unless another controller moved it further already. */
  private async advance(to: number): Promise<void> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await this.kv.get(CURSOR_KEY);
      const current = isLive(entry) ? Number(decoder.decode(entry.value)) : undefined;
      if (current !== undefined && Number.isSafeInteger(current) && current >= to) return;
      try {
        if (entry === null || !isLive(entry)) await this.kv.create(CURSOR_KEY, encoder.encode(String(to)));
        else await this.kv.update(CURSOR_KEY, encoder.encode(String(to)), entry.revision);
        return;
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
      }
    }
    // Contended beyond reason: the uid is taken all the same; the next allocation just probes one more key.
  }

  private async taken(): Promise<Set<number>> {
    const taken = new Set<number>();
    for (const key of await liveKeys(this.kv, 'uid.>')) {
      const uid = Number(key.slice(4));
      if (Number.isSafeInteger(uid)) taken.add(uid);
    }
    return taken;
  }
}
