// The controller's own route, `api.<domain>`, kept registered with every
// router: at once, every register interval, and whenever a router starts.

import type { Bus, Subscription } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import type { RouterRegister } from '../../bus/messages';
import { Subjects } from '../../bus/subjects';
import { decode, RejectionCounter, validateRouterStart } from '../../bus/validate';

export const DEFAULT_REGISTER_INTERVAL_MS = 20_000;

export class RouteRegistration {
  private timer: NodeJS.Timeout | undefined;
  private subscription: Subscription | undefined;
  private intervalMs = DEFAULT_REGISTER_INTERVAL_MS;
  private readonly rejections: RejectionCounter;

  constructor(
    private readonly bus: Bus,
    private readonly route: RouterRegister,
    private readonly log: Logger,
  ) {
    this.rejections = new RejectionCounter(log);
  }

  start(): void {
    this.subscription = this.bus.subscribe(Subjects.routerStart, (msg) => {
      const start = decode(msg.data, validateRouterStart);
      if (!start.ok) {
        this.rejections.reject(msg.subject, start.error);
        return;
      }
      // Follow the interval the routers ask for.
      this.intervalMs = start.value.minimumRegisterIntervalInSeconds * 1000;
      this.register();
      this.schedule();
    });
    this.bus.onEvent((event) => {
      if (event === 'reconnect') this.register();
    });
    this.register();
    this.schedule();
  }

  stop(): void {
    clearInterval(this.timer);
    this.subscription?.unsubscribe();
    try {
      this.bus.publish(Subjects.routerUnregister, this.route);
    } catch {
      // bus already closed: the routers prune the route on their own
    }
  }

  private schedule(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => this.register(), this.intervalMs);
    this.timer.unref();
  }

  private register(): void {
    try {
      this.bus.publish(Subjects.routerRegister, this.route);
    } catch (err) {
      this.log.warn('could not register the API route', { error: err });
    }
  }
}
