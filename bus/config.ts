// Client of the config store (the Doozer role): cluster-wide settings in the
// JetStream KV bucket `skiff_config`, one key per setting, `<component>.<setting>`,
// JSON values. A component reads its settings at start and watches them, so an
// operator's change applies without a restart. Flags and environment variables
// override the store (resolveSetting).

import type { KV, KvEntry, QueuedIterator } from 'nats';
import type { Bus } from './connection';
import { openKv } from './jetstream';
import type { Logger } from './log';

export const CONFIG_BUCKET = 'skiff_config';

/** Component names of design.md, with the autoscaler's and `skiff bench`'s keys; the store accepts any name of the same form. */
export const COMPONENTS = ['router', 'controller', 'stager', 'dea', 'health', 'autoscale', 'bench'] as const;

const DEFAULT_TIMEOUT_MS = 10_000;

export interface ComponentConfig {
  /** Value of '<component>.<setting>', JSON-decoded; undefined when absent. */
  get(setting: string): unknown;
  /** Settings of this component, without the prefix. */
  all(): Record<string, unknown>;
  /** Called on every change after open; value undefined when deleted or purged. */
  onChange(listener: (setting: string, value: unknown | undefined) => void): void;
  close(): Promise<void>;
}

export interface ConfigStoreOptions {
  /** Bound on reaching JetStream and reading the initial settings. Default 10 s. */
  timeoutMs?: number;
}

const COMPONENT_NAME = /^[A-Za-z0-9_-]+$/;
// Key characters JetStream KV accepts; dots separate tokens, so no empty token.
const SETTING_NAME = /^[-/_=A-Za-z0-9]+(\.[-/_=A-Za-z0-9]+)*$/;

function checkComponent(component: string): void {
  if (!COMPONENT_NAME.test(component)) throw new Error(`invalid component name "${component}": use letters, digits, '-' or '_'`);
}

/** Splits '<component>.<setting>', or throws a message naming the expected form. */
export function parseSettingKey(key: string): { component: string; setting: string } {
  const dot = key.indexOf('.');
  const component = dot > 0 ? key.slice(0, dot) : '';
  const setting = dot > 0 ? key.slice(dot + 1) : '';
  if (!COMPONENT_NAME.test(component) || !SETTING_NAME.test(setting)) {
    throw new Error(`invalid setting key "${key}": expected <component>.<setting>, e.g. router.lb_algorithm`);
  }
  return { component, setting };
}

async function withTimeout<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens (creating when absent) the config bucket, with an error that says what is wrong. */
export async function openConfigBucket(bus: Bus, opts: ConfigStoreOptions = {}): Promise<KV> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  try {
    const js = bus.nats.jetstream({ timeout: timeoutMs });
    return await withTimeout(openKv(js, CONFIG_BUCKET), timeoutMs, 'opening the config store');
  } catch (err) {
    const reason = isNoResponders(err) ? 'JetStream is not enabled on the server' : err instanceof Error ? err.message : String(err);
    throw new Error(
      `config store unavailable (JetStream KV bucket ${CONFIG_BUCKET}): ${reason}; ` +
        'is nats-server running with JetStream enabled (nats-server -js)?',
      { cause: err },
    );
  }
}

function isNoResponders(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && String((err as { code: unknown }).code) === '503';
}

export async function openComponentConfig(
  bus: Bus,
  component: string,
  logger: Logger,
  opts: ConfigStoreOptions = {},
): Promise<ComponentConfig> {
  checkComponent(component);
  // Reopened on every resync: a server that lost its store needs the bucket created again.
  const openBucket = () => openConfigBucket(bus, opts);
  const mirror = new ConfigMirror(openBucket, component, logger, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  try {
    await mirror.sync(false);
  } catch (err) {
    await mirror.close();
    throw err;
  }
  bus.onEvent((event) => {
    // The watch's ordered consumer would notice a restarted server only after
    // missing heartbeats (~15 s), and never if the server lost its store; a
    // fresh snapshot on reconnect catches up at once, including deletions.
    if (event === 'reconnect') mirror.scheduleResync(0);
    else if (event === 'closed') void mirror.close();
  });
  logger.debug('config loaded', { component, settings: Object.keys(mirror.all()).length });
  return mirror;
}

const RESYNC_MAX_DELAY_MS = 30_000;

/** This component's settings, kept equal to the bucket by a KV watch. */
class ConfigMirror implements ComponentConfig {
  // Raw JSON text beside the decoded value, to skip re-deliveries that change nothing.
  private readonly settings = new Map<string, { raw: string; value: unknown }>();
  private readonly listeners: Array<(setting: string, value: unknown | undefined) => void> = [];
  private readonly prefix: string;
  private generation = 0;
  private watcher: QueuedIterator<KvEntry> | undefined;
  private closed = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  private resyncFailures = 0;
  private syncing = false;
  private syncAgain = false;

  constructor(
    private readonly openBucket: () => Promise<KV>,
    private readonly component: string,
    private readonly logger: Logger,
    private readonly timeoutMs: number,
  ) {
    this.prefix = `${component}.`;
  }

  get(setting: string): unknown {
    return this.settings.get(setting)?.value;
  }

  all(): Record<string, unknown> {
    return Object.fromEntries([...this.settings].map(([setting, { value }]) => [setting, value]));
  }

  onChange(listener: (setting: string, value: unknown | undefined) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.generation++;
    clearTimeout(this.resyncTimer);
    this.watcher?.stop();
    this.watcher = undefined;
  }

  /**
   * Replaces the watch with a fresh one and resolves once its snapshot of the
   * current values has been applied; later entries are applied as they come.
   */
  async sync(notify: boolean): Promise<void> {
    const generation = ++this.generation;
    this.watcher?.stop();
    this.watcher = undefined;

    // The watch first yields the last value of every key, then signals
    // initializedFn, then yields changes. nats.js 2.29 calls initializedFn in
    // one of two ways: in order from the iterator (the usual case), or directly
    // inside watch() when every initial entry had already arrived; then they are
    // still queued, unread, and getReceived() tells how many to wait for.
    const snapshot = new Map<string, KvEntry>();
    let inSnapshot = true;
    let consumed = 0;
    let expected: number | undefined;
    let watchReturned = false;
    let signalledEarly = false;
    let snapshotApplied!: () => void;
    const applied = new Promise<void>((resolve) => (snapshotApplied = resolve));
    const finishSnapshot = () => {
      inSnapshot = false;
      this.reconcile(snapshot, notify);
      snapshotApplied();
    };

    const kv = await this.openBucket();
    if (generation !== this.generation) return;
    const watching = kv.watch({
      key: `${this.component}.>`,
      initializedFn: () => (watchReturned ? finishSnapshot() : (signalledEarly = true)),
    });
    const watcher = await withTimeout(watching, this.timeoutMs, 'watching the config store').catch((err: unknown) => {
      // A watch that starts after we gave up must not linger as a server-side consumer.
      watching.then((late) => late.stop(), () => {});
      throw err;
    });
    watchReturned = true;
    if (generation !== this.generation) {
      watcher.stop();
      return;
    }
    this.watcher = watcher;
    if (signalledEarly) {
      expected = watcher.getReceived();
      if (expected === 0) finishSnapshot();
    }

    void (async () => {
      let failure: unknown;
      try {
        for await (const entry of watcher) {
          if (generation !== this.generation) return;
          consumed++;
          if (!inSnapshot) {
            this.apply(entry, true);
            continue;
          }
          snapshot.set(entry.key, entry);
          if (expected !== undefined && consumed >= expected) finishSnapshot();
        }
      } catch (err) {
        failure = err;
      }
      if (generation === this.generation && !this.closed) {
        this.logger.warn('config watch ended, resynchronising', { component: this.component, error: failure });
        this.scheduleResync(1000);
      }
    })();

    try {
      await withTimeout(applied, this.timeoutMs, 'reading the config');
    } catch (err) {
      if (generation === this.generation) watcher.stop();
      throw err;
    }
  }

  scheduleResync(delayMs: number): void {
    if (this.closed || this.resyncTimer) return;
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = undefined;
      void this.resync();
    }, delayMs);
    this.resyncTimer.unref();
  }

  private async resync(): Promise<void> {
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = true;
    try {
      do {
        this.syncAgain = false;
        await this.sync(true);
      } while (this.syncAgain && !this.closed);
      this.resyncFailures = 0;
      this.logger.debug('config resynchronised', { component: this.component });
    } catch (err) {
      this.resyncFailures++;
      const delay = Math.min(RESYNC_MAX_DELAY_MS, 500 * 2 ** this.resyncFailures);
      this.logger.warn('config resync failed, will retry', { component: this.component, error: err, retry_ms: delay });
      this.scheduleResync(delay);
    } finally {
      this.syncing = false;
    }
  }

  /** Applies a snapshot: every key in it, and the deletion of every key missing from it. */
  private reconcile(snapshot: Map<string, KvEntry>, notify: boolean): void {
    const live = new Set<string>();
    for (const entry of snapshot.values()) {
      this.apply(entry, notify);
      if (entry.operation === 'PUT') live.add(entry.key.slice(this.prefix.length));
    }
    for (const setting of [...this.settings.keys()]) {
      if (!live.has(setting)) this.forget(setting, notify);
    }
  }

  private apply(entry: KvEntry, notify: boolean): void {
    if (!entry.key.startsWith(this.prefix)) return;
    const setting = entry.key.slice(this.prefix.length);
    if (entry.operation !== 'PUT') {
      this.forget(setting, notify);
      return;
    }
    const raw = new TextDecoder().decode(entry.value);
    if (this.settings.get(setting)?.raw === raw) return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      // The value may be a mistyped secret: name the key only.
      this.logger.warn('config value is not JSON, ignored', { key: entry.key });
      return;
    }
    this.settings.set(setting, { raw, value });
    if (notify) this.notify(setting, value);
  }

  private forget(setting: string, notify: boolean): void {
    if (this.settings.delete(setting) && notify) this.notify(setting, undefined);
  }

  private notify(setting: string, value: unknown): void {
    for (const listener of this.listeners) {
      try {
        listener(setting, value);
      } catch (err) {
        this.logger.error('config change listener failed', { key: this.prefix + setting, error: err });
      }
    }
  }
}

export async function putSetting(bus: Bus, key: string, value: unknown, opts: ConfigStoreOptions = {}): Promise<void> {
  parseSettingKey(key);
  if (value === undefined) throw new Error(`no value for ${key}: use deleteSetting to remove a setting`);
  const kv = await openConfigBucket(bus, opts);
  await kv.put(key, JSON.stringify(value));
}

export async function deleteSetting(bus: Bus, key: string, opts: ConfigStoreOptions = {}): Promise<void> {
  parseSettingKey(key);
  const kv = await openConfigBucket(bus, opts);
  await kv.delete(key);
}

export type SettingSource = 'flag' | 'env' | 'store' | 'default';

/** Flags beat environment beat the config store beat the built-in default. */
export function resolveSetting<T>(sources: { flag?: T; env?: T; store?: T; fallback: T }): { value: T; source: SettingSource } {
  if (sources.flag !== undefined) return { value: sources.flag, source: 'flag' };
  if (sources.env !== undefined) return { value: sources.env, source: 'env' };
  if (sources.store !== undefined) return { value: sources.store, source: 'store' };
  return { value: sources.fallback, source: 'default' };
}
