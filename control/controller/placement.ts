// The pool of DEAs known from `dea.advertise`, and the choice of a DEA for a
// new instance. Pure: the caller feeds advertisements and the clock.

import type { DeaAdvertise } from '../../bus/messages';

/** CF v1's cloud controller forgot a DEA that had not advertised for 10 s. */
export const ADVERTISE_EXPIRY_MS = 10_000;

interface KnownDea {
  id: string;
  availableMemory: number;
  runtimes: Set<string>;
  appCounts: Map<string, number>;
  /** The app counts as the DEA said them, without the placements charged since. */
  advertisedCounts: Map<string, number>;
  seenAt: number;
}

export interface PlacementRequest {
  appId: string;
  runtime: string;
  memoryMb: number;
}

export class DeaPool {
  private readonly deas = new Map<string, KnownDea>();

  constructor(private readonly expiryMs = ADVERTISE_EXPIRY_MS) {}

  advertise(message: DeaAdvertise, now: number): void {
    this.deas.set(message.id, {
      id: message.id,
      availableMemory: message.available_memory,
      runtimes: new Set(message.runtimes),
      appCounts: new Map(Object.entries(message.app_id_to_count)),
      advertisedCounts: new Map(Object.entries(message.app_id_to_count)),
      seenAt: now,
    });
  }

  /** DEAs heard from within the expiry window; older ones are dropped. */
  live(now: number): string[] {
    this.expire(now);
    return [...this.deas.keys()];
  }

  size(now: number): number {
    return this.live(now).length;
  }

  /** Live DEAs whose last advertisement counts instances of the app. */
  holding(appId: string, now: number): string[] {
    this.expire(now);
    return [...this.deas.values()].filter((dea) => (dea.advertisedCounts.get(appId) ?? 0) > 0).map((dea) => dea.id);
  }

  /**
   * The DEA for one instance: the right runtime and enough free memory; among
   * those, the fewest instances of this app (spreading), then the most free
   * memory. The choice is charged to the DEA until its next advertisement, so
   * several instances placed at once spread too. DEAs in `avoid` are taken
   * only when no other fits. Undefined: no DEA fits.
   */
  choose(request: PlacementRequest, now: number, avoid: ReadonlySet<string> = new Set()): string | undefined {
    this.expire(now);
    let best: KnownDea | undefined;
    for (const shunned of [false, true]) {
      for (const dea of this.deas.values()) {
        if (avoid.has(dea.id) !== shunned) continue;
        if (!dea.runtimes.has(request.runtime) || dea.availableMemory < request.memoryMb) continue;
        if (best === undefined || better(dea, best, request.appId)) best = dea;
      }
      if (best !== undefined) break;
    }
    if (best === undefined) return undefined;
    best.availableMemory -= request.memoryMb;
    best.appCounts.set(request.appId, (best.appCounts.get(request.appId) ?? 0) + 1);
    return best.id;
  }

  /**
   * Why `choose` found no DEA for this request, in the user's words: the
   * platform log is not where a user looks. Memory is what the pool knows
   * (advertised, minus what was placed since).
   */
  whyNot(request: PlacementRequest, now: number): string {
    this.expire(now);
    if (this.deas.size === 0) return 'no DEA is running';
    const withRuntime = [...this.deas.values()].filter((dea) => dea.runtimes.has(request.runtime));
    if (withRuntime.length === 0) {
      const runtimes = [...new Set([...this.deas.values()].flatMap((dea) => [...dea.runtimes]))].sort();
      return `no DEA runs ${request.runtime} apps (the DEAs run: ${runtimes.join(', ') || 'nothing'})`;
    }
    const largest = Math.max(0, ...withRuntime.map((dea) => dea.availableMemory));
    return `no DEA has ${request.memoryMb}M free (largest free: ${largest}M)`;
  }

  /** How many more instances of this size the live DEAs could take (what `choose` would accept, one after another). */
  room(runtime: string, memoryMb: number, now: number): number {
    this.expire(now);
    let room = 0;
    for (const dea of this.deas.values()) if (dea.runtimes.has(runtime) && memoryMb > 0) room += Math.floor(Math.max(0, dea.availableMemory) / memoryMb);
    return room;
  }

  private expire(now: number): void {
    for (const [id, dea] of this.deas) if (now - dea.seenAt > this.expiryMs) this.deas.delete(id);
  }
}

function better(candidate: KnownDea, current: KnownDea, appId: string): boolean {
  const a = candidate.appCounts.get(appId) ?? 0;
  const b = current.appCounts.get(appId) ?? 0;
  if (a !== b) return a < b;
  if (candidate.availableMemory !== current.availableMemory) return candidate.availableMemory > current.availableMemory;
  // Ties broken by id so that the choice does not depend on arrival order.
  return candidate.id < current.id;
}
