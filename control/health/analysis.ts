// One analysis pass: desired state (the apps as the controller keeps them)
// against actual state (heartbeats), giving the START and STOP requests for
// `cloudcontrollers.hm.requests`. The controller checks version and
// last_updated before acting, so a request built from a view a moment old
// is harmless. Pure apart from the ledger it updates: times are passed in.

import type { HmRequest } from '../../bus/messages';
import { desiredVersion, type AppDesiredState } from '../../bus/platform';
import { isLive, type ActualState, type KnownInstance } from './actual';
import { isFlapping } from './flapping';
import type { Ledger } from './ledger';
import type { HealthSettings } from './settings';

/**
 * When an index without a live instance may be started again: never once
 * given up; at the backoff's time when a crash since the last START is
 * unanswered; at once when its DEA shut down or evacuated; otherwise once nothing has been seen of it for droplet_lost
 * (counted from when it was wanted, last seen or last asked for), which
 * leaves the controller's own placements time to show up.
 */
export function restartDue(
  memory: { since: number; lastSeen: number; lastStart: number; vacatedAt: number },
  crash: { lastCrashAt: number; restartAt: number } | undefined,
  settings: Pick<HealthSettings, 'dropletLostMs'>,
): number {
  if (crash !== undefined && crash.restartAt === Infinity) return Infinity;
  if (crash !== undefined && crash.lastCrashAt > memory.lastStart) return crash.restartAt;
  if (memory.vacatedAt > memory.lastStart) return memory.vacatedAt;
  return Math.max(memory.since, memory.lastSeen, memory.lastStart) + settings.dropletLostMs;
}

/** Which of several live instances of one index and version stays: RUNNING first, then the oldest. */
function keeper(instances: KnownInstance[]): KnownInstance {
  return [...instances].sort(
    (a, b) =>
      Number(b.state === 'RUNNING') - Number(a.state === 'RUNNING') ||
      a.firstSeen - b.firstSeen ||
      (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0),
  )[0]!;
}

export function analyze(apps: AppDesiredState[], actual: ActualState, ledger: Ledger, now: number, settings: HealthSettings): HmRequest[] {
  const requests: HmRequest[] = [];
  const byId = new Map(apps.map((app) => [app.id, app]));
  const stop = (droplet: string, lastUpdated: number, instances: KnownInstance[]) => {
    const ids = instances.map((i) => i.instance).filter((id) => !ledger.stopPending(id, now, settings.dropletLostMs));
    if (ids.length === 0) return;
    ledger.stopAsked(ids, now);
    requests.push({ droplet, op: 'STOP', last_updated: lastUpdated, instances: ids.sort() });
  };

  // Instances of apps deleted, stopped or never staged: all of them go.
  for (const droplet of [...actual.droplets()].sort()) {
    const app = byId.get(droplet);
    if (app !== undefined && app.state === 'STARTED' && desiredVersion(app) !== null) continue;
    // A deleted app has no last_updated left to match: the controller lets its instances go.
    stop(droplet, app?.last_updated ?? 0, actual.ofDroplet(droplet).filter(isLive));
  }

  for (const app of apps) {
    const version = desiredVersion(app);
    if (app.state !== 'STARTED' || version === null) continue;
    const live = actual.ofDroplet(app.id).filter(isLive);
    const unwanted: KnownInstance[] = [];
    const start: number[] = [];
    const flappingStart: number[] = [];

    for (let index = 0; index < app.instances; index++) {
      const here = live.filter((i) => i.index === index);
      const current = here.filter((i) => i.version === version);
      const memory = ledger.memory(app.id, version, index, now);
      if (current.length > 0) {
        const kept = keeper(current);
        for (const i of current) {
          ledger.seen(app.id, version, index, i.lastSeen);
          if (i !== kept) unwanted.push(i);
        }
        // Old versions go once the current one serves here, as in a rolling restart.
        if (kept.state === 'RUNNING') unwanted.push(...here.filter((i) => i.version !== version));
        continue;
      }
      const crash = ledger.crashCount(app.id, version, index, now, settings);
      if (now < restartDue(memory, crash, settings)) continue;
      (isFlapping(crash) ? flappingStart : start).push(index);
    }
    unwanted.push(...live.filter((i) => i.index >= app.instances));

    stop(app.id, app.last_updated, unwanted);
    for (const [indices, flapping] of [[start, false], [flappingStart, true]] as const) {
      if (indices.length === 0) continue;
      ledger.started(app.id, version, indices, now);
      requests.push({ droplet: app.id, op: 'START', last_updated: app.last_updated, version, indices: [...indices], flapping });
    }
  }
  return requests;
}
