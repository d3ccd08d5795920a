// What the health manager remembers between analysis passes: crash counts
// per index and version, when each desired index was last seen alive or
// asked for, which instances crashed, and which stops were asked for. Every
// manager keeps its own ledger from the same bus messages (heartbeats, exits,
// and the START/STOP requests any manager sends), so the one that takes over
// the lease carries on where the last one stopped. Pure: times are passed in.

import { desiredVersion, type AppDesiredState } from '../../bus/platform';
import { hasGivenUp, isExpired, isFlapping, recordCrash, type CrashCount } from './flapping';
import type { HealthSettings } from './settings';

export interface IndexMemory {
  /** ms this index was first wanted (or this manager started): absence counts from here. */
  since: number;
  /** ms of the last heartbeat showing a live instance of this version here; 0 when none. */
  lastSeen: number;
  /** ms of the last START asked for this index; 0 when none. */
  lastStart: number;
  /** ms its instance ended without crashing and without being asked to (its DEA shut down or evacuated); 0 when none. */
  vacatedAt: number;
}

/** Crashed instances kept per app for `healthmanager.status` CRASHED. */
export const MAX_CRASHED_KEPT = 50;

export function indexKey(droplet: string, version: string, index: number): string {
  return JSON.stringify([droplet, version, index]);
}

export class Ledger {
  private readonly crashCounts = new Map<string, CrashCount>();
  private readonly indexes = new Map<string, IndexMemory>();
  private readonly crashed = new Map<string, Array<{ instance: string; since: number }>>();
  private readonly stops = new Map<string, number>();
  /** last_updated of each app as last read: a change resets its crash counts. */
  private readonly stamps = new Map<string, number>();

  constructor(private readonly random: () => number = Math.random) {}

  /** A CRASHED exit. `sinceSeconds` is the crash time reported (epoch seconds). */
  crash(droplet: string, version: string, index: number, instance: string, now: number, sinceSeconds: number, settings: HealthSettings): CrashCount {
    const key = indexKey(droplet, version, index);
    const count = recordCrash(this.crashCounts.get(key), now, settings, this.random);
    this.crashCounts.set(key, count);
    const list = this.crashed.get(droplet) ?? [];
    if (!list.some((c) => c.instance === instance)) list.push({ instance, since: sinceSeconds });
    this.crashed.set(droplet, list.slice(-MAX_CRASHED_KEPT));
    return count;
  }

  /** The crash count in force (undefined when none, or when its window has passed). */
  crashCount(droplet: string, version: string, index: number, now: number, settings: HealthSettings): CrashCount | undefined {
    const key = indexKey(droplet, version, index);
    const count = this.crashCounts.get(key);
    if (count === undefined) return undefined;
    if (isExpired(count, now, settings)) {
      this.crashCounts.delete(key);
      return undefined;
    }
    return count;
  }

  memory(droplet: string, version: string, index: number, now: number): IndexMemory {
    const key = indexKey(droplet, version, index);
    let memory = this.indexes.get(key);
    if (memory === undefined) {
      memory = { since: now, lastSeen: 0, lastStart: 0, vacatedAt: 0 };
      this.indexes.set(key, memory);
    }
    return memory;
  }

  seen(droplet: string, version: string, index: number, at: number): void {
    const memory = this.memory(droplet, version, index, at);
    memory.lastSeen = Math.max(memory.lastSeen, at);
  }

  /** The instance here went with its DEA: restart it now rather than after droplet_lost. */
  vacated(droplet: string, version: string, index: number, now: number): void {
    this.memory(droplet, version, index, now).vacatedAt = now;
  }

  started(droplet: string, version: string, indices: number[], now: number): void {
    for (const index of indices) this.memory(droplet, version, index, now).lastStart = now;
  }

  stopAsked(instances: string[], now: number): void {
    for (const instance of instances) this.stops.set(instance, now);
  }

  /** True when a stop of this instance was asked for within `withinMs`. */
  stopPending(instance: string, now: number, withinMs: number): boolean {
    const at = this.stops.get(instance);
    return at !== undefined && now - at < withinMs;
  }

  /** Indices of this version flapping now (given-up ones included), with the time (epoch seconds) they began to. */
  flapping(droplet: string, version: string, now: number, settings: HealthSettings): Array<{ index: number; since: number }> {
    const result: Array<{ index: number; since: number }> = [];
    for (const [key, count] of this.crashCounts) {
      const [d, v, index] = JSON.parse(key) as [string, string, number];
      if (d !== droplet || v !== version || isExpired(count, now, settings) || !isFlapping(count)) continue;
      result.push({ index, since: Math.floor(count.flappingSince! / 1000) });
    }
    return result.sort((a, b) => a.index - b.index);
  }

  givenUp(droplet: string, version: string, index: number, now: number, settings: HealthSettings): boolean {
    return hasGivenUp(this.crashCount(droplet, version, index, now, settings));
  }

  crashedInstances(droplet: string): Array<{ instance: string; since: number }> {
    return [...(this.crashed.get(droplet) ?? [])];
  }

  /**
   * Brings the ledger in line with the apps as just read: an app changed
   * since (new last_updated) starts with clean crash counts, so a given-up
   * app is tried again once its owner changes it; a deleted app is forgotten.
   */
  sync(apps: AppDesiredState[], now: number, settings: HealthSettings, liveInstances: ReadonlySet<string>): void {
    const byId = new Map(apps.map((app) => [app.id, app]));
    for (const app of apps) {
      const stamp = this.stamps.get(app.id);
      if (stamp !== undefined && stamp !== app.last_updated) this.forgetCounts(app.id);
      this.stamps.set(app.id, app.last_updated);
    }
    for (const droplet of [...this.stamps.keys()]) {
      if (!byId.has(droplet)) {
        this.stamps.delete(droplet);
        this.forgetCounts(droplet);
        this.crashed.delete(droplet);
      }
    }
    for (const [key, memory] of this.indexes) {
      const [droplet, version, index] = JSON.parse(key) as [string, string, number];
      const app = byId.get(droplet);
      const wanted = app !== undefined && app.state === 'STARTED' && index < app.instances && desiredVersion(app) === version;
      if (!wanted) this.indexes.delete(key);
    }
    for (const [key, count] of this.crashCounts) if (isExpired(count, now, settings)) this.crashCounts.delete(key);
    for (const [instance, at] of this.stops) {
      if (!liveInstances.has(instance) || now - at > settings.dropletLostMs) this.stops.delete(instance);
    }
  }

  private forgetCounts(droplet: string): void {
    for (const key of [...this.crashCounts.keys()]) {
      if ((JSON.parse(key) as [string])[0] === droplet) this.crashCounts.delete(key);
    }
  }
}
