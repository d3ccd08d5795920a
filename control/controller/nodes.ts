// `GET /nodes`: the cluster as the components describe themselves. The
// controller hears every `vcap.component.announce`, asks
// `vcap.component.discover` every few seconds and before each listing, and
// keeps what it learned in the KV bucket `skiff_nodes` (one key per
// component), so a node that went down still shows after a controller
// restart, and controllers side by side show the same cluster.

import type { KV } from 'nats';
import { COMPONENT_TYPES, NODE_COMPONENT_TYPE } from '../../bus/component';
import { requestAll, type Bus, type Subscription } from '../../bus/connection';
import { liveEntries, openKv } from '../../bus/jetstream';
import type { Logger } from '../../bus/log';
import type { ComponentAnnounce } from '../../bus/messages';
import { Subjects } from '../../bus/subjects';
import { decode, RejectionCounter, validateComponentAnnounce } from '../../bus/validate';

export const NODES_BUCKET = 'skiff_nodes';
/** A component silent this long is forgotten (the bucket's max age): a week of "down" is enough notice. */
const FORGET_AFTER_MS = 7 * 24 * 3600 * 1000;
/** How long a discovery collects answers: every component answers at once, so a second is plenty. */
const DISCOVER_WINDOW_MS = 750;
/** A component's record is rewritten at most this often while nothing about it changes. */
const REWRITE_EVERY_MS = 5000;

/** What the bucket keeps of a component (never its credentials). */
export interface ComponentRecord {
  node: string;
  type: string;
  index: number;
  uuid: string;
  host: string;
  /** ISO 8601, as announced. */
  start: string;
  roles?: string[];
  /** Epoch ms of the last announcement or discovery answer. */
  last_seen: number;
}

export interface NodeEntry {
  node: string;
  host: string;
  roles: string[];
  /** Seconds; null while down. */
  uptime: number | null;
  state: 'running' | 'down';
  /** Epoch seconds. */
  last_seen: number;
  components: Array<{ type: string; index: number; uuid: string; host: string; state: 'running' | 'down'; start: string; last_seen: number }>;
}

export function recordOf(message: ComponentAnnounce, now: number): ComponentRecord {
  const record: ComponentRecord = {
    // Components older than `node` name none: their host (without its port) stands for it.
    node: message.node ?? message.host.replace(/:\d+$/, ''),
    type: message.type,
    index: message.index,
    uuid: message.uuid,
    host: message.host,
    start: message.start,
    last_seen: now,
  };
  if (message.roles !== undefined) record.roles = [...message.roles].sort();
  return record;
}

/** The role a component type is (`CloudController` -> `controller`); unknown types lowercased. */
export function roleOf(type: string): string {
  return (COMPONENT_TYPES as Record<string, string>)[type] ?? type.toLowerCase();
}

/**
 * One entry per node, by name. A node runs while any of its components
 * answered within `downAfterMs`; its roles are those its Node supervisor
 * announced, else the types of its components (the running ones while it
 * runs). A component that restarted (same node, type and index, newer
 * record) hides its silent predecessor.
 */
export function nodeView(records: readonly ComponentRecord[], now: number, downAfterMs: number): NodeEntry[] {
  const running = (r: ComponentRecord) => now - r.last_seen <= downAfterMs;
  const slot = (r: ComponentRecord) => `${r.node}\u0000${r.type}\u0000${r.index}`;
  const newest = new Map<string, number>();
  for (const r of records) newest.set(slot(r), Math.max(newest.get(slot(r)) ?? 0, r.last_seen));
  const shown = records.filter((r) => running(r) || r.last_seen >= newest.get(slot(r))!);

  const byNode = new Map<string, ComponentRecord[]>();
  for (const r of shown) byNode.set(r.node, [...(byNode.get(r.node) ?? []), r]);
  const entries: NodeEntry[] = [];
  for (const [node, members] of byNode) {
    const live = members.filter(running);
    const up = live.length > 0;
    const supervisor = newestOf(members.filter((r) => r.type === NODE_COMPONENT_TYPE && (!up || running(r))));
    const roleSource = (up ? live : members).filter((r) => r.type !== NODE_COMPONENT_TYPE);
    const roles = supervisor?.roles ?? [...new Set(roleSource.map((r) => roleOf(r.type)))].sort();
    const since = supervisor !== undefined && up ? Date.parse(supervisor.start) : Math.min(...live.map((r) => Date.parse(r.start)));
    entries.push({
      node,
      host: supervisor?.host ?? commonHost(members),
      roles,
      uptime: up && Number.isFinite(since) ? Math.max(0, Math.floor((now - since) / 1000)) : null,
      state: up ? 'running' : 'down',
      last_seen: Math.floor(Math.max(...members.map((r) => r.last_seen)) / 1000),
      components: members
        .map((r) => ({ type: r.type, index: r.index, uuid: r.uuid, host: r.host, state: running(r) ? ('running' as const) : ('down' as const), start: r.start, last_seen: Math.floor(r.last_seen / 1000) }))
        .sort((a, b) => a.type.localeCompare(b.type) || a.index - b.index || b.last_seen - a.last_seen),
    });
  }
  return entries.sort((a, b) => a.node.localeCompare(b.node));
}

function newestOf(records: ComponentRecord[]): ComponentRecord | undefined {
  return records.reduce<ComponentRecord | undefined>((best, r) => (best === undefined || r.last_seen > best.last_seen ? r : best), undefined);
}

/** The address most of a node's components give, without ports (the roles of one node share it). */
function commonHost(records: ComponentRecord[]): string {
  const counts = new Map<string, number>();
  for (const r of records) {
    const host = r.host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    counts.set(host, (counts.get(host) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0] ?? '';
}

export interface NodeWatchOptions {
  /** A node that has not answered for this long shows as down. */
  downAfterMs: number;
}

export class NodeWatch {
  private subscription: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly written = new Map<string, { at: number; text: string }>();
  private readonly rejections: RejectionCounter;
  private discovering: Promise<void> | undefined;

  private constructor(
    private readonly bus: Bus,
    private readonly kv: KV,
    private readonly log: Logger,
    private readonly options: NodeWatchOptions,
  ) {
    this.rejections = new RejectionCounter(log);
  }

  static async open(bus: Bus, log: Logger, options: NodeWatchOptions): Promise<NodeWatch> {
    const kv = await openKv(bus.nats.jetstream(), NODES_BUCKET, { ttl: FORGET_AFTER_MS });
    return new NodeWatch(bus, kv, log, options);
  }

  start(): void {
    this.subscription = this.bus.subscribe(Subjects.componentAnnounce, (msg) => {
      const result = decode(msg.data, validateComponentAnnounce);
      if (!result.ok) this.rejections.reject(Subjects.componentAnnounce, result.error);
      else void this.remember(recordOf(result.value, Date.now()));
    });
    // Three tries before a silent node counts as down, so one lost answer is not an outage.
    const every = Math.max(1000, Math.min(15_000, Math.floor(this.options.downAfterMs / 3)));
    this.timer = setInterval(() => void this.discover().catch((error: unknown) => this.log.debug('discovery failed', { error })), every);
    this.timer.unref();
    void this.discover().catch(() => {});
  }

  stop(): void {
    clearInterval(this.timer);
    this.subscription?.unsubscribe();
  }

  /** Every node, after asking every component to answer now. */
  async list(): Promise<NodeEntry[]> {
    await this.discover().catch((error: unknown) => this.log.warn('vcap.component.discover failed; showing what is stored', { error }));
    const records: ComponentRecord[] = [];
    for (const entry of await liveEntries(this.kv)) {
      try {
        records.push(JSON.parse(new TextDecoder().decode(entry.value)) as ComponentRecord);
      } catch {
        // Not ours: the bucket is the controller's alone, but nothing may stop a listing.
      }
    }
    return nodeView(records, Date.now(), this.options.downAfterMs);
  }

  /** One discovery at a time: a listing during a periodic round waits for that round. */
  private discover(): Promise<void> {
    this.discovering ??= this.gather().finally(() => (this.discovering = undefined));
    return this.discovering;
  }

  private async gather(): Promise<void> {
    const replies = await requestAll<unknown>(this.bus, Subjects.componentDiscover, {}, { windowMs: DISCOVER_WINDOW_MS, logger: this.log });
    const now = Date.now();
    await Promise.all(
      replies.map((reply) => {
        const result = validateComponentAnnounce(reply);
        if (!result.ok) {
          this.rejections.reject(Subjects.componentDiscover, result.error);
          return undefined;
        }
        return this.remember(recordOf(result.value, now));
      }),
    );
  }

  private async remember(record: ComponentRecord): Promise<void> {
    const key = `c.${record.uuid.replace(/[^-_A-Za-z0-9]/g, '_')}`;
    const { last_seen: _, ...rest } = record;
    const text = JSON.stringify(rest);
    const previous = this.written.get(key);
    if (previous !== undefined && previous.text === text && record.last_seen - previous.at < Math.min(REWRITE_EVERY_MS, this.options.downAfterMs / 4)) return;
    this.written.set(key, { at: record.last_seen, text });
    try {
      await this.kv.put(key, JSON.stringify(record));
    } catch (error) {
      this.written.delete(key);
      this.log.warn('could not record a component', { node: record.node, type: record.type, error: (error as Error).message });
    }
  }
}
