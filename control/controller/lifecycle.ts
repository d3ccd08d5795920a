// Keeps the DEAs in line with the desired state in KV: carries out the
// actions of a change, replaces old versions once new ones run, answers the
// health manager's requests, records crashes, and reconciles every few
// seconds so that a restarted platform brings started apps back.

import { placements } from './metrics';
import { randomUUID } from 'node:crypto';
import type { Bus, Subscription } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import type { DeaFindDropletReply, HmRequest } from '../../bus/messages';
import { HM_REQUESTS_QUEUE, Subjects } from '../../bus/subjects';
import { HM_GIVEUP_SUBJECT } from '../../bus/platform';
import { decode, RejectionCounter, validateDeaAdvertise, validateDropletExited, validateHmGiveUp, validateHmRequest } from '../../bus/validate';
import { convergence, plan } from './desired';
import { recordEvents } from './events';
import { askFlapping } from './hm_status';
import type { Instances } from './instances';
import type { DeaPool } from './placement';
import { appVersion, type AppRecord, type Store } from './store';
import type { AppUids } from './uids';

/** A start that has not shown up in dea.find.droplet yet is given this long before the index counts as missing. */
const PLACEMENT_GRACE_MS = 20_000;
/** A failed reconcile pass is tried again this soon, once, rather than a whole interval later. */
const RECONCILE_RETRY_MS = 2000;
/** How long old versions are left running while the new ones fail to come up. */
const REPLACE_TIMEOUT_MS = 10 * 60_000;
/** A health manager answers from memory; longer means it is in trouble, and placing wins. */
const HM_STATUS_TIMEOUT_MS = 1000;
// Apps surveyed at once in a reconcile pass: each holds a find.droplet inbox
// open for the find window, and a platform may have thousands of apps.
const SURVEY_CONCURRENCY = 32;

export interface LifecycleOptions {
  reconcileIntervalMs: number;
  /** A STAGING app whose job began longer ago than this (plus a margin) lost its job: it is marked FAILED. */
  stagingTimeoutMs: number;
  replacePollMs: number;
}

export class Lifecycle {
  private readonly subscriptions: Subscription[] = [];
  private readonly rejections: RejectionCounter;
  /** `${appId}/${version}/${index}` -> when placed, and on which DEA (undefined until chosen). */
  private readonly placedAt = new Map<string, { at: number; dea: string | undefined }>();
  private readonly replacing = new Set<string>();
  private reconcileTimer: NodeJS.Timeout | undefined;
  private reconciling = false;
  private closed = false;
  private readonly id = randomUUID();

  constructor(
    private readonly bus: Bus,
    private readonly store: Store,
    private readonly pool: DeaPool,
    private readonly instances: Instances,
    private readonly log: Logger,
    private readonly options: LifecycleOptions,
    private readonly uids: AppUids,
  ) {
    this.rejections = new RejectionCounter(log);
  }

  start(): void {
    this.subscriptions.push(
      this.bus.subscribe(Subjects.deaAdvertise, (msg) => {
        const ad = decode(msg.data, validateDeaAdvertise);
        if (!ad.ok) {
          this.rejections.reject(msg.subject, ad.error);
          return;
        }
        const now = Date.now();
        const firstDea = this.pool.size(now) === 0;
        this.pool.advertise(ad.value, now);
        // The first DEA of a (re)started platform: bring started apps back now, not at the next pass.
        if (firstDea) setTimeout(() => void this.reconcile(), 500).unref();
      }),
      this.bus.subscribe(Subjects.hmRequests, (msg) => this.onHmRequest(msg.subject, msg.data), { queue: HM_REQUESTS_QUEUE }),
      // One controller records each crash.
      this.bus.subscribe(Subjects.dropletExited, (msg) => this.onExited(msg.subject, msg.data), { queue: HM_REQUESTS_QUEUE }),
      this.bus.subscribe(HM_GIVEUP_SUBJECT, (msg) => this.onGiveUp(msg.subject, msg.data), { queue: HM_REQUESTS_QUEUE }),
    );
    // Ask DEAs to advertise now rather than within 5 s, so the pool fills at once.
    this.bus.publish(Subjects.deaLocate, {});
    this.reconcileTimer = setInterval(() => void this.reconcile(), this.options.reconcileIntervalMs);
    this.reconcileTimer.unref();
    setTimeout(() => void this.reconcile(), 1000).unref();
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearInterval(this.reconcileTimer);
    for (const sub of this.subscriptions.splice(0)) sub.unsubscribe();
    // A restarted platform reconciles at once instead of waiting out this controller's lease.
    await this.store.releaseLease('reconcile', this.id).catch(() => undefined);
  }

  /** Carries out what it takes to go from `before` to `after`, and tells the world. */
  async changed(before: AppRecord, after: AppRecord): Promise<void> {
    if (before.last_updated !== after.last_updated || before.state !== after.state) {
      this.bus.publish(Subjects.dropletUpdated, { droplet: after.id });
    }
    for (const action of plan(before, after)) {
      switch (action.kind) {
        case 'start':
          await this.place(after, action.indices);
          break;
        case 'stop':
          this.instances.stop(action.filter);
          break;
        case 'update-routes':
          this.instances.updateRoutes(after);
          break;
        case 'replace-old-versions':
          void this.replaceOldVersions(after.id);
          break;
      }
    }
  }

  /** Stops every instance of a deleted (or to-be-deleted) app. */
  stopAll(app: AppRecord): void {
    this.instances.stop({ droplet: app.id });
    this.bus.publish(Subjects.dropletUpdated, { droplet: app.id });
  }

  private async place(given: AppRecord, indices: number[], flapping = false, avoid?: ReadonlySet<string>): Promise<void> {
    if (indices.length === 0) return;
    const app = await this.withUid(given);
    if (app === undefined) return;
    const now = Date.now();
    for (const index of indices) this.placedAt.set(`${app.id}/${appVersion(app)}/${index}`, { at: now, dea: undefined });
    const { placed, unplaced, why } = await this.instances.start(app, indices, flapping, avoid);
    if (placed.size > 0) placements.inc({ result: 'placed' }, placed.size);
    if (unplaced.length > 0) placements.inc({ result: 'unplaced' }, unplaced.length);
    // Unplaced indices count as missing at the next reconcile, not as placed.
    for (const index of unplaced) this.placedAt.delete(`${app.id}/${appVersion(app)}/${index}`);
    for (const [index, dea] of placed) {
      const pending = this.placedAt.get(`${app.id}/${appVersion(app)}/${index}`);
      if (pending !== undefined && pending.at === now) pending.dea = dea;
    }
    await this.notePlacement(app, unplaced.length > 0 ? (why ?? 'no DEA took the instance') : null);
  }

  /**
   * Keeps the app's placement_error in step with the last placement, so that
   * `skiff push` can say at once why nothing will run. A failure to write
   * costs the explanation, not the placement.
   */
  private async notePlacement(app: AppRecord, error: string | null): Promise<void> {
    // Read afresh (the caller's record may predate another controller's note); written only on a change.
    await this.store
      .updateApp(app.id, (current) => {
        if ((current.placement_error ?? null) === error) return undefined;
        current.placement_error = error;
        return current;
      })
      .catch((err: unknown) => this.log.warn('could not record the placement error', { app: app.name, error: err }));
  }

  /**
   * The app with its uid. An app created before apps had uids gets one now,
   * kept in its record so that every later placement uses the same one.
   * Undefined (nothing is placed, the reason logged) when the app is gone or
   * the range has no uid left: running it as a shared user instead would
   * quietly give up its isolation.
   */
  private async withUid(app: AppRecord): Promise<AppRecord | undefined> {
    if (app.uid !== undefined) return app;
    let uid: number;
    try {
      uid = await this.uids.allocate(app.id);
    } catch (err) {
      this.log.error('app not placed: no uid for it', { app: app.name, droplet: app.id, error: err });
      return undefined;
    }
    const result = await this.store.updateApp(app.id, (current) => {
      if (current.uid !== undefined) return undefined;
      current.uid = uid;
      return current;
    });
    // Gone meanwhile, or another controller gave it one first: ours goes back.
    if (result?.after.uid !== uid) await this.uids.free(uid, app.id).catch(() => undefined);
    if (result === undefined || result.after.uid === undefined) return undefined;
    if (result.after.uid === uid) this.log.info('app given its uid', { app: app.name, droplet: app.id, uid });
    return { ...app, uid: result.after.uid };
  }

  /** Instances seen on a DEA end their grace: if they vanish later, they are missing. */
  private seen(app: AppRecord, found: DeaFindDropletReply[]): void {
    const version = appVersion(app);
    for (const instance of found) {
      if (instance.version === version && (instance.state === 'RUNNING' || instance.state === 'STARTING')) {
        this.placedAt.delete(`${app.id}/${version}/${instance.index}`);
      }
    }
  }

  private recentlyPlaced(app: AppRecord, now: number): Set<number> {
    const indices = new Set<number>();
    const prefix = `${app.id}/${appVersion(app)}/`;
    const live = new Set(this.pool.live(now));
    for (const [key, { at, dea }] of this.placedAt) {
      // A DEA that stopped advertising (killed, most likely) will not start it: the index is missing now, not in 20 s.
      const deaGone = dea !== undefined && live.size > 0 && !live.has(dea);
      if (now - at > PLACEMENT_GRACE_MS || deaGone) this.placedAt.delete(key);
      else if (key.startsWith(prefix)) indices.add(Number(key.slice(prefix.length)));
    }
    return indices;
  }

  /**
   * After a restart or a new droplet: polls until each index runs the new
   * version, stopping the old instance of an index as soon as its successor
   * is RUNNING. A newer change takes over; on timeout the old ones stay.
   */
  private async replaceOldVersions(appId: string): Promise<void> {
    if (this.replacing.has(appId)) return;
    this.replacing.add(appId);
    const deadline = Date.now() + REPLACE_TIMEOUT_MS;
    try {
      while (!this.closed && Date.now() < deadline) {
        await sleep(this.options.replacePollMs);
        const app = await this.store.getApp(appId);
        if (app === undefined || app.state !== 'STARTED') return;
        const found = await this.instances.find({ droplet: appId });
        this.seen(app, found);
        const { stop } = convergence(app, found, this.recentlyPlaced(app, Date.now()));
        if (stop.length > 0) this.instances.stop({ droplet: appId, instances: stop });
        const version = appVersion(app);
        const oldLeft = found.some((i) => i.version !== version && (i.state === 'RUNNING' || i.state === 'STARTING') && !stop.includes(i.instance));
        if (!oldLeft) return;
      }
    } catch (err) {
      this.log.warn('replacing old instances failed; the reconcile loop will retry', { droplet: appId, error: err });
    } finally {
      this.replacing.delete(appId);
    }
  }

  /** Brings every started app to its instance count; one pass (`isRetry`: the quick second try of a pass that failed). */
  async reconcile(isRetry = false): Promise<void> {
    if (this.reconciling || this.closed) return;
    this.reconciling = true;
    try {
      // Two controllers reconciling at once would both place a missing index.
      if (!(await this.store.lease('reconcile', this.id, Date.now(), this.options.reconcileIntervalMs * 3))) return;
      const apps = await this.store.listApps();
      for (const app of apps) if (app.package_state === 'STAGING' && !this.closed) await this.failLostStaging(app);
      // Placing blind would pile every instance onto whichever DEA answers discover first.
      if (this.pool.size(Date.now()) === 0) return;
      const started = apps.filter((app) => app.state === 'STARTED' && appVersion(app) !== null);
      // Every app is asked about at once: one after another, each waiting out
      // a find window and a health manager's answer, the apps late in the
      // list came back seconds after the first ones on a restarted platform.
      const surveys = await mapConcurrently(started, SURVEY_CONCURRENCY, (app) => this.survey(app));
      // Placing stays one app after another: each choice is charged to its DEA before the next.
      for (const survey of surveys) {
        if (this.closed) return;
        if (survey === undefined) continue;
        const { app, place, stop, flapping, silent } = survey;
        // Asking took a moment, in which a health manager's START may have placed some of them.
        const placedMeanwhile = this.recentlyPlaced(app, Date.now());
        const missing = place.filter((index) => !flapping.has(index) && !placedMeanwhile.has(index));
        if (missing.length > 0) {
          this.log.info('reconcile: placing missing instances', { app: app.name, indices: missing.join(','), ...(silent.size > 0 ? { silent_deas: [...silent].join(',') } : {}) });
          await this.place(app, missing, false, silent);
        } else if (place.length === 0 && app.placement_error) {
          // Nothing is missing (scaled down, or a DEA made room): an old explanation no longer holds.
          await this.notePlacement(app, null);
        }
        if (stop.length > 0) this.instances.stop({ droplet: app.id, instances: stop });
      }
    } catch (err) {
      // JetStream gives no answer while a dead server's streams elect new
      // leaders (a few seconds), and a pass that asked then failed on its
      // timeout: waiting a whole interval more made a lost instance wait for
      // its place twice as long. Once sooner, then the interval again.
      const retry = !isRetry && !this.closed;
      this.log.warn('reconcile pass failed', { error: err, ...(retry ? { retry_in_ms: RECONCILE_RETRY_MS } : {}) });
      if (retry) setTimeout(() => void this.reconcile(true), RECONCILE_RETRY_MS).unref();
    } finally {
      this.reconciling = false;
    }
  }

  /**
   * What one app needs: the indices to place and the instances to stop, and
   * the DEAs that advertise instances of it but did not answer for them
   * (killed or cut off, most likely, and still in the pool for up to 10 s:
   * a missing instance placed there would be lost again); undefined when
   * the app changed meanwhile.
   */
  private async survey(app: AppRecord): Promise<{ app: AppRecord; place: number[]; stop: string[]; flapping: Set<number>; silent: Set<string> } | undefined> {
    const holding = this.pool.holding(app.id, Date.now());
    const found = await this.instances.find({ droplet: app.id });
    // The listing is a find window old: a stop or restart since then must win.
    const fresh = await this.store.getApp(app.id);
    if (fresh === undefined || fresh.state !== 'STARTED' || appVersion(fresh) !== appVersion(app) || fresh.instances !== app.instances) return undefined;
    this.seen(app, found);
    const { place, stop } = convergence(app, found, this.recentlyPlaced(app, Date.now()));
    const flapping = place.length > 0 ? await this.flappingIndices(app) : new Set<number>();
    const answered = new Set(found.map((i) => i.dea));
    // The fresh record: it carries the latest placement_error.
    return { app: fresh, place, stop, flapping, silent: new Set(holding.filter((dea) => !answered.has(dea))) };
  }

  /**
   * Indices the health manager reports FLAPPING for the app's version: left
   * to its backoff, so that this pass does not restart a crash loop every
   * few seconds. No health manager (or no answer): none.
   */
  private async flappingIndices(app: AppRecord): Promise<Set<number>> {
    const answer = await askFlapping(this.bus, app.id, appVersion(app)!, HM_STATUS_TIMEOUT_MS);
    if (answer.ok) return answer.indices;
    if (answer.reason === 'malformed') this.rejections.reject(Subjects.healthmanagerStatus, answer.error);
    else if (answer.reason === 'unavailable') this.log.warn('health manager status unavailable; placing all missing instances', { app: app.name, error: answer.error });
    return new Set();
  }

  private async failLostStaging(app: AppRecord): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    const started = app.staging_started ?? app.updated;
    // The margin covers clocks of controllers that disagree a little.
    const timeout = this.options.stagingTimeoutMs / 1000;
    if (now - started <= timeout + Math.min(60, timeout)) return;
    const result = await this.store.updateApp(app.id, (current) => {
      if (current.package_state !== 'STAGING' || current.staging_id !== app.staging_id) return undefined;
      current.package_state = 'FAILED';
      current.staging_error = 'staging was interrupted (the controller running it stopped): upload again';
      current.staging_id = null;
      current.updated = now;
      return current;
    });
    if (result?.after.package_state === 'FAILED') this.log.warn('staging lost, marked FAILED', { app: app.name });
  }

  private async onHmRequest(subject: string, data: Uint8Array): Promise<void> {
    const decoded = decode(data, validateHmRequest);
    if (!decoded.ok) {
      this.rejections.reject(subject, decoded.error);
      return;
    }
    const request: HmRequest = decoded.value;
    const app = await this.store.getApp(request.droplet);
    if (request.op === 'START') {
      if (app === undefined || app.state !== 'STARTED' || appVersion(app) !== request.version) {
        this.log.info('health manager START ignored: app stopped, gone or changed', { droplet: request.droplet, version: request.version });
        return;
      }
      // The reconcile pass may have placed these already: start only what is still missing.
      const found = await this.instances.find({ droplet: app.id });
      this.seen(app, found);
      const missing = new Set(convergence(app, found, this.recentlyPlaced(app, Date.now())).place);
      const indices = request.indices.filter((i) => missing.has(i));
      if (indices.length < request.indices.length) {
        this.log.info('health manager START: some indices already run or are starting', { droplet: request.droplet, asked: request.indices.join(','), placing: indices.join(',') });
      }
      await this.place(app, indices, request.flapping);
      if (indices.length > 0) {
        await recordEvents(this.store, this.log, app.id, 'health manager', [
          { type: 'hm_restarted', description: `restarted index ${indices.join(', ')}${request.flapping ? ' (flapping)' : ''}` },
        ]);
      }
      return;
    }
    // A deleted app has nothing left to protect: its instances may go.
    if (app !== undefined && app.last_updated !== request.last_updated) {
      this.log.info('health manager STOP ignored: app changed since', { droplet: request.droplet });
      return;
    }
    this.instances.stop({ droplet: request.droplet, instances: request.instances });
    if (app !== undefined) {
      await recordEvents(this.store, this.log, app.id, 'health manager', [
        { type: 'hm_stopped', description: `stopped ${request.instances.length} instance${request.instances.length === 1 ? '' : 's'}` },
      ]);
    }
  }

  private async onGiveUp(subject: string, data: Uint8Array): Promise<void> {
    const decoded = decode(data, validateHmGiveUp);
    if (!decoded.ok) {
      this.rejections.reject(subject, decoded.error);
      return;
    }
    const notice = decoded.value;
    const app = await this.store.getApp(notice.droplet);
    // A notice about a version the app has left behind explains nothing the user sees.
    if (app === undefined || appVersion(app) !== notice.version) return;
    await recordEvents(this.store, this.log, app.id, 'health manager', [
      { type: 'gave_up', description: `gave up on index ${notice.index} after ${notice.crashes} crashes: no more restarts until the app is restarted or pushed again` },
    ]);
  }

  private async onExited(subject: string, data: Uint8Array): Promise<void> {
    const decoded = decode(data, validateDropletExited);
    if (!decoded.ok) {
      this.rejections.reject(subject, decoded.error);
      return;
    }
    const exited = decoded.value;
    // An instance that ended is no longer a pending placement: its index may be placed again at once.
    this.placedAt.delete(`${exited.droplet}/${exited.version}/${exited.index}`);
    if (exited.reason !== 'CRASHED') return;
    if ((await this.store.getApp(exited.droplet)) === undefined) return;
    await this.store.addCrash(exited.droplet, {
      instance: exited.instance,
      index: exited.index,
      since: exited.crash_timestamp ?? Math.floor(Date.now() / 1000),
      reason: exited.exit_description ?? 'crashed',
      exit_status: exited.exit_status ?? null,
    });
    await recordEvents(this.store, this.log, exited.droplet, 'platform', [
      {
        type: 'crashed',
        description: `index ${exited.index} crashed: ${exited.exit_description ?? 'crashed'}${exited.exit_status === undefined ? '' : ` (exit status ${exited.exit_status})`}`,
      },
    ]);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** fn over items, at most `limit` at a time; the results in the items' order. */
async function mapConcurrently<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
