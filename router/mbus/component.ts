import type { Bus, Subscription } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import type { ComponentAnnounce } from '../../bus/messages';
import { Subjects } from '../../bus/subjects';

export interface ComponentIdentity {
  type: string;
  index: number;
  uuid: string;
  /** "ip:port" of the status server. */
  host: () => string;
  credentials: [string, string];
  startedAt: Date;
}

/**
 * Cloud Foundry v1's VcapComponent: `vcap.component.announce` at start (and
 * again after a NATS reconnect, so collectors that restarted with NATS learn
 * of the router), and a reply to every `vcap.component.discover` request.
 * The message carries the status credentials, as in CF v1: it is never logged.
 */
export class ComponentAnnouncer {
  private subscription: Subscription | null = null;
  private stopped = false;

  constructor(
    private readonly bus: Bus,
    private readonly identity: ComponentIdentity,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.subscription = this.bus.subscribe(Subjects.componentDiscover, (msg) => {
      if (!msg.respond(this.message())) this.log.debug('vcap.component.discover without a reply subject, ignored');
    });
    this.bus.onEvent((event) => {
      if (event === 'reconnect' && !this.stopped) this.announce();
    });
    this.announce();
  }

  stop(): void {
    this.stopped = true;
    this.subscription?.unsubscribe();
    this.subscription = null;
  }

  announce(): void {
    try {
      this.bus.publish(Subjects.componentAnnounce, this.message());
    } catch (error) {
      // Only the error: the message holds the credentials.
      this.log.warn('could not publish vcap.component.announce', { error: (error as Error).message });
    }
  }

  message(now = Date.now()): ComponentAnnounce {
    const id = this.identity;
    return {
      type: id.type,
      index: id.index,
      uuid: id.uuid,
      host: id.host(),
      credentials: [id.credentials[0], id.credentials[1]],
      start: isoSeconds(id.startedAt),
      uptime: formatUptime(now - id.startedAt.getTime()),
    };
  }
}

/** "2026-11-25T10:00:00Z", as protocol.md writes `start`. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** CF v1's uptime: "0d:0h:5m:3s". */
export function formatUptime(ms: number): string {
  let s = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(s / 86_400);
  s -= days * 86_400;
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const minutes = Math.floor(s / 60);
  s -= minutes * 60;
  return `${days}d:${hours}h:${minutes}m:${s}s`;
}
