// Actual state: the instances DEAs say they run. A DEA's heartbeat lists all
// its STARTING/RUNNING/STOPPING instances, so it replaces what that DEA said
// before; `droplet.exited` removes an instance at once; an instance no
// heartbeat has mentioned for `droplet_lost` is lost (its DEA died or is cut
// off) and removed. Pure: times are passed in.

import type { DeaHeartbeat, DropletExited, InstanceState } from '../../bus/messages';

export interface KnownInstance {
  droplet: string;
  version: string;
  instance: string;
  index: number;
  state: InstanceState;
  dea: string;
  /** ms this manager first heard of it (which of two duplicates is older). */
  firstSeen: number;
  /** ms of the last heartbeat that listed it. */
  lastSeen: number;
}

const LIVE: ReadonlySet<InstanceState> = new Set(['STARTING', 'RUNNING']);

export function isLive(instance: Pick<KnownInstance, 'state'>): boolean {
  return LIVE.has(instance.state);
}

export class ActualState {
  private readonly instances = new Map<string, KnownInstance>();
  private readonly byDea = new Map<string, Set<string>>();

  heartbeat(beat: DeaHeartbeat, now: number): void {
    const listed = new Set<string>();
    for (const d of beat.droplets) {
      // Ended instances have no place here; DEAs list them only by mistake.
      if (d.state !== 'STARTING' && d.state !== 'RUNNING' && d.state !== 'STOPPING') continue;
      listed.add(d.instance);
      const known = this.instances.get(d.instance);
      if (known !== undefined && known.dea !== beat.dea) this.byDea.get(known.dea)?.delete(d.instance);
      this.instances.set(d.instance, {
        droplet: d.droplet,
        version: d.version,
        instance: d.instance,
        index: d.index,
        state: d.state,
        dea: beat.dea,
        firstSeen: known?.firstSeen ?? now,
        lastSeen: now,
      });
    }
    for (const id of this.byDea.get(beat.dea) ?? []) {
      if (!listed.has(id)) this.instances.delete(id);
    }
    this.byDea.set(beat.dea, listed);
  }

  /** Forgets the instance; returns what was known of it. */
  exited(exit: Pick<DropletExited, 'instance'>): KnownInstance | undefined {
    const known = this.instances.get(exit.instance);
    if (known === undefined) return undefined;
    this.instances.delete(exit.instance);
    this.byDea.get(known.dea)?.delete(exit.instance);
    return known;
  }

  /** Removes and returns the instances not heartbeated for longer than `lostMs`. */
  pruneLost(now: number, lostMs: number): KnownInstance[] {
    const lost: KnownInstance[] = [];
    for (const instance of this.instances.values()) {
      if (now - instance.lastSeen > lostMs) lost.push(instance);
    }
    for (const instance of lost) this.exited(instance);
    for (const [dea, ids] of this.byDea) if (ids.size === 0) this.byDea.delete(dea);
    return lost;
  }

  has(instance: string): boolean {
    return this.instances.has(instance);
  }

  ofDroplet(droplet: string): KnownInstance[] {
    return [...this.instances.values()].filter((i) => i.droplet === droplet);
  }

  droplets(): Set<string> {
    return new Set([...this.instances.values()].map((i) => i.droplet));
  }

  /** Indices with a RUNNING instance of this version (duplicates count once). */
  healthy(droplet: string, version: string): number {
    const indices = new Set<number>();
    for (const i of this.instances.values()) {
      if (i.droplet === droplet && i.version === version && i.state === 'RUNNING') indices.add(i.index);
    }
    return indices.size;
  }
}
