// Cloud Foundry v1's VcapComponent, for every role: `vcap.component.announce`
// at start (and again after a NATS reconnect, so a collector that restarted
// with NATS learns of the component), and a reply to every
// `vcap.component.discover` request. `skiff nodes` is built from these.

import { hostname } from 'node:os';
import type { Bus, Subscription } from './connection';
import type { FlagSpec } from './flags';
import { UsageError } from './flags';
import type { Logger } from './log';
import type { ComponentAnnounce } from './messages';
import { NODE_NAME } from './platform';
import { Subjects } from './subjects';

/** Component types as they announce themselves, and the role each one is. */
export const COMPONENT_TYPES = {
  Router: 'router',
  CloudController: 'controller',
  Stager: 'stager',
  DEA: 'dea',
  HealthManager: 'health',
  ServicesNode: 'services',
} as const;
export type ComponentType = keyof typeof COMPONENT_TYPES | 'Node';

/** The node supervisor (`skiff up`) announces as this type, with its assigned roles. */
export const NODE_COMPONENT_TYPE = 'Node';

/**
 * `--node NAME`: which node a role belongs to. Read from SKIFF_NODE (not
 * SKIFF_<ROLE>_NODE) because `skiff up` sets one name for all of its roles.
 */
export const NODE_FLAG: FlagSpec = { name: 'node', kind: 'string', env: 'SKIFF_NODE', help: 'name of the node this role runs on, as `skiff nodes` shows it', defaultText: 'the host name' };


/** The node name from a flag value (undefined: the host name), or a UsageError. */
export function nodeName(value: unknown, origin = '--node'): string {
  if (value === undefined) return defaultNodeName();
  if (typeof value !== 'string' || !NODE_NAME.test(value)) {
    throw new UsageError(`${origin} must be 1-63 letters, digits, '_' or '-', starting with a letter or digit, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** The host's name as a node name: its first label (a node name is one NATS subject token: no dots). */
export function defaultNodeName(): string {
  const first = hostname().split('.')[0]?.replace(/[^A-Za-z0-9_-]/g, '-').replace(/^[-_]+/, '').slice(0, 63) ?? '';
  return NODE_NAME.test(first) ? first : 'localhost';
}

export interface ComponentIdentity {
  type: string;
  index: number;
  uuid: string;
  /** Where others reach the component: its advertised "address:port", else the host name. Asked at each message. */
  host: () => string;
  node: string;
  /** Basic-auth credentials of the component's status or metrics port (CF v1 announced them the same way). */
  credentials?: [string, string];
  /** "host:port" of its GET /metrics (bus/metrics-server.ts; the router's status port), asked at each message. */
  metrics?: () => string | undefined;
  /** The node supervisor's assigned roles. */
  roles?: () => string[];
  startedAt: Date;
}

/**
 * The announcer. A message may carry credentials (of a status or metrics port): it is never
 * logged, and errors name only what failed.
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
    this.stopped = false;
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
      this.log.warn('could not publish vcap.component.announce', { error: (error as Error).message });
    }
  }

  message(now = Date.now()): ComponentAnnounce {
    const id = this.identity;
    const message: ComponentAnnounce = {
      type: id.type,
      index: id.index,
      uuid: id.uuid,
      host: id.host(),
      node: id.node,
      start: isoSeconds(id.startedAt),
      uptime: formatUptime(now - id.startedAt.getTime()),
    };
    if (id.credentials !== undefined) message.credentials = [id.credentials[0], id.credentials[1]];
    const metrics = id.metrics?.();
    if (metrics !== undefined) message.metrics = metrics;
    if (id.roles !== undefined) message.roles = [...id.roles()];
    return message;
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

/** "host:port" with a wildcard listen address replaced by the host name, for `host` of a listening role. */
export function reachableAt(listenHost: string, port: number): string {
  const host = listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '' ? hostname() : listenHost;
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
