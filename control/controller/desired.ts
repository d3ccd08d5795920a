// Desired state of an app: how a REST change or a staging result turns one
// AppRecord into the next, and which DEA actions take the platform from the
// old record to the new one. Pure, so the rules are tested without a bus.

import type { DeaFindDropletReply, DeaStop } from '../../bus/messages';
import { appVersion, type AppRecord } from './store';
import type { AppChange } from './validation';

export type ChangeResult = { ok: true; app: AppRecord } | { ok: false; status: number; error: string };

/** Applies a validated PUT /apps/:name body. */
export function applyChange(app: AppRecord, change: AppChange, nowSeconds: number): ChangeResult {
  const next: AppRecord = structuredClone(app);
  if (change.instances !== undefined) next.instances = change.instances;
  if (change.memory !== undefined) next.memory = change.memory;
  if (change.uris !== undefined) next.uris = change.uris;
  if (change.env !== undefined) next.env = change.env;
  if (change.command !== undefined) next.command = change.command;
  if (change.session_affinity !== undefined) next.session_affinity = change.session_affinity;
  if (change.services !== undefined) {
    if (change.services.length > 0) next.services = [...change.services];
    else delete next.services;
  }
  if (change.state !== undefined) next.state = change.state;
  if (change.autoscale !== undefined) next.autoscale = change.autoscale;
  const policy = next.autoscale ?? null;
  if (policy !== null) {
    if (change.instances !== undefined && (change.instances < policy.min || change.instances > policy.max)) {
      return { ok: false, status: 400, error: `instances must be within the autoscale policy's ${policy.min}-${policy.max}: change the policy (skiff autoscale) or turn it off` };
    }
    // A new policy takes the app into its range at once, rather than at the autoscaler's next look.
    if (change.autoscale) next.instances = Math.min(policy.max, Math.max(policy.min, next.instances));
  }

  const starting = next.state === 'STARTED' && app.state !== 'STARTED';
  if (starting && next.droplet === null) {
    return { ok: false, status: 400, error: `app ${app.name} has no droplet yet: upload its bits first` };
  }
  const restarting =
    next.state === 'STARTED' &&
    app.state === 'STARTED' &&
    // New bindings: instances see services only through the environment they start with.
    (next.memory !== app.memory || JSON.stringify(next.env) !== JSON.stringify(app.env) || next.command !== app.command || !sameServices(app, next));
  if (starting || restarting) next.run_count++;
  if (changedDesiredState(app, next)) next.last_updated = nowSeconds;
  next.updated = nowSeconds;
  return { ok: true, app: next };
}

/** `POST /apps/:name/restart`: a started app gets a new version, which rolls over its instances. */
export function applyRestart(app: AppRecord, nowSeconds: number): { ok: true; app: AppRecord } | { ok: false; status: number; error: string } {
  if (app.state !== 'STARTED') return { ok: false, status: 409, error: `app ${app.name} is stopped: start it instead` };
  if (app.droplet === null) return { ok: false, status: 400, error: `app ${app.name} has no droplet yet: upload its bits first` };
  const next = structuredClone(app);
  next.run_count++;
  next.last_updated = nowSeconds;
  next.updated = nowSeconds;
  return { ok: true, app: next };
}

/** A successful staging: the new droplet becomes current; a started app gets a new version. */
export function applyStaged(
  app: AppRecord,
  droplet: { sha1: string; object: string; runtime: string; framework: string; command: string },
  nowSeconds: number,
): AppRecord {
  const next = structuredClone(app);
  next.package_state = 'STAGED';
  next.staging_error = null;
  next.staging_id = null;
  const newDroplet = next.droplet !== droplet.sha1 || next.droplet_object !== droplet.object;
  next.droplet = droplet.sha1;
  next.droplet_object = droplet.object;
  next.staging = { runtime: droplet.runtime, framework: droplet.framework, command: droplet.command };
  // Even the same droplet restarts a started app: the push asked for it.
  if (next.state === 'STARTED') next.run_count++;
  if (newDroplet || next.state === 'STARTED') next.last_updated = nowSeconds;
  next.updated = nowSeconds;
  return next;
}

/** The app's service ids; records from before services have none. */
export function appServices(app: AppRecord): string[] {
  return app.services ?? [];
}

/** The same services bound, in any order. */
export function sameServices(a: AppRecord, b: AppRecord): boolean {
  const x = [...appServices(a)].sort();
  const y = [...appServices(b)].sort();
  return x.length === y.length && x.every((id, i) => id === y[i]);
}

/** Records from before session affinity have no field: off. */
export function sessionAffinity(app: AppRecord): boolean {
  return app.session_affinity === true;
}

function changedDesiredState(a: AppRecord, b: AppRecord): boolean {
  return (
    a.state !== b.state ||
    a.instances !== b.instances ||
    a.memory !== b.memory ||
    a.run_count !== b.run_count ||
    a.droplet !== b.droplet ||
    a.command !== b.command ||
    sessionAffinity(a) !== sessionAffinity(b) ||
    !sameServices(a, b) ||
    JSON.stringify(a.uris) !== JSON.stringify(b.uris) ||
    JSON.stringify(a.env) !== JSON.stringify(b.env)
  );
}

export type Action =
  | { kind: 'start'; indices: number[] }
  | { kind: 'stop'; filter: DeaStop }
  /**
   * New uris or session affinity: the running instances register their
   * routes anew (dea.update). Affinity is a property of the routes, not of
   * the app's processes: a restart would only drop the in-memory sessions
   * it is there to keep.
   */
  | { kind: 'update-routes'; uris: string[]; session_affinity: boolean }
  /** A new version runs beside the old: old instances stop once the new ones at their index run. */
  | { kind: 'replace-old-versions' };

/** DEA actions that take the platform from `before` to `after`. */
export function plan(before: AppRecord, after: AppRecord): Action[] {
  const actions: Action[] = [];
  const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
  if (after.state === 'STOPPED') {
    if (before.state === 'STARTED') actions.push({ kind: 'stop', filter: { droplet: after.id } });
    return actions;
  }
  if (appVersion(after) === null) return actions;
  const newVersion = before.state !== 'STARTED' || appVersion(before) !== appVersion(after);
  if (newVersion) {
    actions.push({ kind: 'start', indices: range(0, after.instances) });
    if (before.state === 'STARTED') {
      actions.push({ kind: 'replace-old-versions' });
      // Indices beyond the new count have no successor to wait for.
      if (after.instances < before.instances) {
        actions.push({ kind: 'stop', filter: { droplet: after.id, indices: range(after.instances, before.instances) } });
      }
    }
    return actions;
  }
  if (after.instances < before.instances) {
    actions.push({ kind: 'stop', filter: { droplet: after.id, indices: range(after.instances, before.instances) } });
  } else if (after.instances > before.instances) {
    actions.push({ kind: 'start', indices: range(before.instances, after.instances) });
  }
  if (JSON.stringify(before.uris) !== JSON.stringify(after.uris) || sessionAffinity(before) !== sessionAffinity(after)) {
    actions.push({ kind: 'update-routes', uris: after.uris, session_affinity: sessionAffinity(after) });
  }
  return actions;
}

const LIVE_STATES = new Set(['STARTING', 'RUNNING']);

/**
 * What a started app still needs, from the instances that answered
 * `dea.find.droplet`: indices without a live instance of the current
 * version (minus those placed a moment ago, whose start may not have
 * reached the DEA yet), and instances to stop: other versions at an index
 * where the current version runs, and anything beyond the instance count.
 */
export function convergence(
  app: AppRecord,
  instances: DeaFindDropletReply[],
  recentlyPlaced: ReadonlySet<number>,
): { place: number[]; stop: string[] } {
  const version = appVersion(app);
  const place: number[] = [];
  const stop: string[] = [];
  if (app.state !== 'STARTED' || version === null) return { place, stop };
  const live = instances.filter((i) => LIVE_STATES.has(i.state));
  for (let index = 0; index < app.instances; index++) {
    const here = live.filter((i) => i.index === index);
    const current = here.filter((i) => i.version === version);
    if (current.length === 0 && !recentlyPlaced.has(index)) place.push(index);
    if (current.some((i) => i.state === 'RUNNING')) {
      for (const old of here) if (old.version !== version) stop.push(old.instance);
    }
  }
  for (const extra of live) if (extra.index >= app.instances) stop.push(extra.instance);
  return { place, stop };
}
