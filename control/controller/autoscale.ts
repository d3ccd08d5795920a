// The controller's half of autoscaling: the health manager's autoscaler
// decides (control/health/autoscaler.ts) and asks on AUTOSCALE_SUBJECT;
// scaling stays the controller's job, by the same path as `skiff scale`
// (applyChange, then the lifecycle), capped at what the owner may use and
// what the DEAs have free, and recorded as the app event `autoscaled` with
// the autoscaler's reason and the cap.

import { AUTOSCALE_SUBJECT, type AutoscaleReply, type AutoscaleRequest } from '../../bus/autoscale';
import type { Bus, BusMessage, Subscription } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import { HM_REQUESTS_QUEUE } from '../../bus/subjects';
import { decode, RejectionCounter, validateAutoscaleRequest } from '../../bus/validate';
import { applyChange } from './desired';
import { recordEvents } from './events';
import type { Lifecycle } from './lifecycle';
import type { DeaPool } from './placement';
import type { AppRecord, Store } from './store';

export interface CapInput {
  from: number;
  to: number;
  memoryMb: number;
  /** MB the owner may still start beyond what runs now; undefined: no limit (an admin's app). */
  ownerRoomMb: number | undefined;
  /** Instances of this size the DEAs could still take. */
  deaRoom: number;
}

/** The count a scale-out may reach, and why it is lower than asked. Scaling in is never capped. */
export function capScaleOut({ from, to, memoryMb, ownerRoomMb, deaRoom }: CapInput): { to: number; capped?: string } {
  if (to <= from) return { to };
  let allowed = to;
  let capped: string | undefined;
  if (ownerRoomMb !== undefined) {
    const byOwner = from + Math.max(0, Math.floor(ownerRoomMb / memoryMb));
    if (byOwner < allowed) {
      allowed = byOwner;
      capped = `the owner's memory limit leaves room for ${byOwner - from} more of ${memoryMb}M`;
    }
  }
  const byDeas = from + Math.max(0, deaRoom);
  if (byDeas < allowed) {
    allowed = byDeas;
    capped = `the DEAs have room for ${deaRoom} more of ${memoryMb}M`;
  }
  return capped === undefined ? { to } : { to: allowed, capped: `capped at ${allowed} of ${to} wanted: ${capped}` };
}

export class AutoscaleRequests {
  private subscription: Subscription | undefined;
  private readonly rejections: RejectionCounter;

  constructor(
    private readonly bus: Bus,
    private readonly store: Store,
    private readonly lifecycle: Lifecycle,
    private readonly pool: DeaPool,
    private readonly log: Logger,
    private readonly limits: { memory: number },
  ) {
    this.rejections = new RejectionCounter(log);
  }

  start(): void {
    this.subscription = this.bus.subscribe(AUTOSCALE_SUBJECT, (msg) => void this.onRequest(msg), { queue: HM_REQUESTS_QUEUE });
  }

  stop(): void {
    this.subscription?.unsubscribe();
  }

  private async onRequest(msg: BusMessage): Promise<void> {
    const decoded = decode(msg.data, validateAutoscaleRequest);
    if (!decoded.ok) {
      this.rejections.reject(msg.subject, decoded.error);
      return;
    }
    let reply: AutoscaleReply;
    try {
      reply = await this.scale(decoded.value);
    } catch (error) {
      this.log.warn('autoscale request failed', { droplet: decoded.value.droplet, error });
      reply = { ok: false, error: 'the controller could not scale the app (see its log)' };
    }
    msg.respond(reply);
  }

  private async scale(request: AutoscaleRequest): Promise<AutoscaleReply> {
    const app = await this.store.getApp(request.droplet);
    if (app === undefined || app.state !== 'STARTED' || !app.autoscale) return { ok: false, error: 'the app is gone, stopped or has no autoscale policy' };
    if (app.instances !== request.from) return { ok: false, error: `the app has ${app.instances} instances now, not ${request.from}` };
    const policy = app.autoscale;
    const wanted = Math.min(policy.max, Math.max(policy.min, request.to));
    const { to, capped } = capScaleOut({
      from: app.instances,
      to: wanted,
      memoryMb: app.memory,
      ownerRoomMb: await this.ownerRoomMb(app),
      deaRoom: this.pool.room(app.staging?.runtime ?? '', app.memory, Date.now()),
    });
    if (to === app.instances) {
      // Capped to nothing: said once, not at every look of the autoscaler.
      if (capped !== undefined) await this.recordOnce(app, `not autoscaled ${request.from} -> ${wanted}: ${request.reason} (${capped})`);
      return { ok: true, instances: app.instances, ...(capped === undefined ? {} : { capped }) };
    }
    let refusal: string | undefined;
    const result = await this.store.updateApp(app.id, (current) => {
      // Changed since it was read (a user's scale, another controller): the autoscaler looks again.
      if (current.instances !== request.from || current.state !== 'STARTED' || !current.autoscale) {
        refusal = 'the app changed meanwhile';
        return undefined;
      }
      const changed = applyChange(current, { instances: to }, Math.floor(Date.now() / 1000));
      if (!changed.ok) {
        refusal = changed.error;
        return undefined;
      }
      refusal = undefined;
      return changed.app;
    });
    if (result === undefined) return { ok: false, error: 'the app is gone' };
    if (refusal !== undefined) return { ok: false, error: refusal };
    await this.lifecycle.changed(result.before, result.after);
    const description = `autoscaled ${request.from} -> ${to}: ${request.reason}${capped === undefined ? '' : ` (${capped})`}`;
    this.log.info('autoscaled', { app: app.name, from: request.from, to, reason: request.reason, capped });
    await recordEvents(this.store, this.log, app.id, 'autoscaler', [{ type: 'autoscaled', description }]);
    return { ok: true, instances: to, ...(capped === undefined ? {} : { capped }) };
  }

  /** What the owner's started apps leave of their memory limit; undefined for an admin's app (no limit). */
  private async ownerRoomMb(app: AppRecord): Promise<number | undefined> {
    const owner = await this.store.getUser(app.owner);
    if (owner === undefined || owner.admin) return undefined;
    const used = (await this.store.listApps())
      .filter((a) => a.owner === app.owner && a.state === 'STARTED')
      .reduce((sum, a) => sum + a.memory * a.instances, 0);
    return this.limits.memory - used;
  }

  private async recordOnce(app: AppRecord, description: string): Promise<void> {
    const last = (await this.store.events(app.id)).at(-1);
    if (last?.description === description) return;
    await recordEvents(this.store, this.log, app.id, 'autoscaler', [{ type: 'autoscale_capped', description }]);
  }
}
