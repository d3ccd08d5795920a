import { randomUUID } from 'node:crypto';
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
 * Keeps the registry in step with the bus: applies register/unregister,
 * announces the router (router.start) at boot and on every reconnect so route
 * owners re-register at once, and answers router.greet.
 */
export class RouteSubscriber {
  readonly id = `0-${randomUUID()}`;
  readonly rejections: RejectionCounter;
  private readonly subscriptions: Subscription[] = [];

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
      this.bus.subscribe(Subjects.routerRegister, (msg) => this.apply(msg, true), limits),
      this.bus.subscribe(Subjects.routerUnregister, (msg) => this.apply(msg, false), limits),
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

  private apply(msg: BusMessage, register: boolean): void {
    const result = decode<RouterRegister>(msg.data, validateRouterRegister);
    if (!result.ok) {
      this.rejections.reject(msg.subject, result.error);
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
