import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Bus, BusMessage, Subscription } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import type { RouterRegister, RouterStart } from '../../bus/messages';
import { Subjects } from '../../bus/subjects';
import { decode, RejectionCounter, validateRouterRegister } from '../../bus/validate';
import type { Registry } from '../registry/registry';
import type { RouterStats } from '../varz/varz';

export interface SubscriberOptions {
  /** Announced in router.start: how often route owners must re-register. */
  minimumRegisterIntervalSeconds: number;
  pruneThresholdSeconds: number;
  /** Addresses of this router, announced in router.start. */
  hosts: string[];
}

/**
 * Registry work done per event-loop turn while route messages wait. A storm
 * of register messages (100k/s) costs more CPU than one thread has to spare;
 * applied straight from the NATS read, it held the loop for tens of
 * milliseconds per turn and requests waited behind it. Queued and applied in
 * slices between turns, requests keep being served and the messages are
 * applied a little later, in order, none dropped.
 */
const APPLY_BUDGET_MS = 2;

/**
 * Keeps the registry in step with the bus: applies register/unregister,
 * announces the router (router.start) at boot and on every reconnect so route
 * owners re-register at once, and answers router.greet.
 */
export class RouteSubscriber {
  readonly id = `0-${randomUUID()}`;
  readonly rejections: RejectionCounter;
  private readonly subscriptions: Subscription[] = [];
  /** Route messages received and not yet applied, in arrival order. */
  private readonly pending: Uint8Array[] = [];
  private readonly pendingIsRegister: boolean[] = [];
  private pendingHead = 0;
  private applyScheduled = false;
  private readonly applySlice = (): void => this.applyPending();

  constructor(
    private readonly bus: Bus,
    private readonly registry: Registry,
    private readonly stats: RouterStats,
    private readonly options: SubscriberOptions,
    private readonly log: Logger,
  ) {
    this.rejections = new RejectionCounter(log);
  }

  start(): void {
    // Route floods must not be dropped: generous pending limits on both route subjects.
    const limits = { maxPendingMessages: 2_000_000, maxPendingBytes: 1024 * 1024 * 1024 };
    this.subscriptions.push(
      this.bus.subscribe(Subjects.routerRegister, (msg) => this.enqueue(msg, true), limits),
      this.bus.subscribe(Subjects.routerUnregister, (msg) => this.enqueue(msg, false), limits),
      this.bus.subscribe(Subjects.routerGreet, (msg) => {
        msg.respond(this.startMessage());
      }),
    );
    this.bus.onEvent((event) => {
      if (event === 'reconnect') {
        // Owners could not refresh their routes while the bus was down; give
        // them a full threshold from now, and ask them to re-register at once.
        this.registry.refreshAll(Date.now());
        this.announce();
      } else if (event === 'slow-consumer') {
        this.stats.slowConsumerEvents++;
      }
    });
    this.announce();
  }

  stop(): void {
    for (const sub of this.subscriptions.splice(0)) sub.unsubscribe();
  }

  announce(): void {
    try {
      this.bus.publish(Subjects.routerStart, this.startMessage());
    } catch (error) {
      this.log.warn('could not publish router.start', { error: (error as Error).message });
    }
  }

  startMessage(): RouterStart {
    return {
      id: this.id,
      hosts: this.options.hosts,
      minimumRegisterIntervalInSeconds: this.options.minimumRegisterIntervalSeconds,
      pruneThresholdInSeconds: this.options.pruneThresholdSeconds,
    };
  }

  /** Route messages waiting to be applied (a storm's backlog). */
  get backlog(): number {
    return this.pending.length - this.pendingHead;
  }

  private enqueue(msg: BusMessage, register: boolean): void {
    this.pending.push(msg.data);
    this.pendingIsRegister.push(register);
    if (!this.applyScheduled) {
      this.applyScheduled = true;
      setImmediate(this.applySlice);
    }
  }

  private applyPending(): void {
    const deadline = performance.now() + APPLY_BUDGET_MS;
    const pending = this.pending;
    let i = this.pendingHead;
    while (i < pending.length) {
      this.apply(pending[i]!, this.pendingIsRegister[i]!);
      i++;
      if ((i & 63) === 0 && performance.now() >= deadline) break;
    }
    if (i === pending.length) {
      pending.length = 0;
      this.pendingIsRegister.length = 0;
      this.pendingHead = 0;
      this.applyScheduled = false;
      return;
    }
    this.pendingHead = i;
    if (i > 65536 && i * 2 > pending.length) {
      // Drop the applied front now and then, so the arrays do not grow with the storm's length.
      pending.splice(0, i);
      this.pendingIsRegister.splice(0, i);
      this.pendingHead = 0;
    }
    setImmediate(this.applySlice);
  }

  private apply(data: Uint8Array, register: boolean): void {
    const result = decode<RouterRegister>(data, validateRouterRegister);
    if (!result.ok) {
      this.rejections.reject(register ? Subjects.routerRegister : Subjects.routerUnregister, result.error);
      return;
    }
    const now = Date.now();
    if (register) {
      this.stats.registerMessages++;
      this.registry.register(result.value, now);
    } else {
      this.stats.unregisterMessages++;
      this.registry.unregister(result.value, now);
    }
  }
}
