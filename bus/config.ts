// Client of the config store (the Doozer role): cluster-wide settings in the
// JetStream KV bucket `skiff_config`, one key per setting, `<component>.<setting>`,
// JSON values. A component reads its settings at start and watches them, so an
// operator's change applies without a restart. Flags and environment variables
// override the store (resolveSetting).

import type { KV, KvEntry } from 'nats';
import type { Bus } from './connection';
import type { Logger } from './log';

export const CONFIG_BUCKET = 'skiff_config';

/** Component names of design.md; the store accepts any name of the same form. */
export const COMPONENTS = ['router', 'controller', 'stager', 'dea', 'health'] as const;

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
    return await withTimeout(js.views.kv(CONFIG_BUCKET), timeoutMs, 'opening the config store');
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
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const kv = await openConfigBucket(bus, opts);
  const prefix = `${component}.`;
  // Raw JSON text beside the decoded value, to skip re-deliveries that change nothing.
  const settings = new Map<string, { raw: string; value: unknown }>();
  const listeners: Array<(setting: string, value: unknown | undefined) => void> = [];
  let initialized = false;
  let markInitialized!: () => void;
  const initialValuesRead = new Promise<void>((resolve) => (markInitialized = resolve));

  const notify = (setting: string, value: unknown | undefined) => {
    if (!initialized) return;
    for (const listener of listeners) {
      try {
        listener(setting, value);
      } catch (err) {
        logger.error('config change listener failed', { key: prefix + setting, error: err });
      }
    }
  };

  const apply = (entry: KvEntry) => {
    if (!entry.key.startsWith(prefix)) return;
    const setting = entry.key.slice(prefix.length);
    if (entry.operation !== 'PUT') {
      if (settings.delete(setting)) notify(setting, undefined);
      return;
    }
    const raw = new TextDecoder().decode(entry.value);
    if (settings.get(setting)?.raw === raw) return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      // The value may be a mistyped secret: name the key only.
      logger.warn('config value is not JSON, ignored', { key: entry.key });
      return;
    }
    settings.set(setting, { raw, value });
    notify(setting, value);
  };

  // One watcher does both jobs: it first yields the current value of every key
  // (then calls initializedFn), then every later change, so nothing can slip
  // between an initial read and the start of the watch.
  const watcher = await withTimeout(
    kv.watch({ key: `${component}.>`, initializedFn: () => markInitialized() }),
    timeoutMs,
    'watching the config store',
  );
  let closed = false;
  const consumed = (async () => {
    try {
      for await (const entry of watcher) apply(entry);
    } catch (err) {
      if (!closed) logger.error('config watch ended', { component, error: err });
    }
  })();

  try {
    await withTimeout(initialValuesRead, timeoutMs, 'reading the initial config');
  } catch (err) {
    watcher.stop();
    throw err;
  }
  initialized = true;
  logger.debug('config loaded', { component, settings: settings.size });

  return {
    get: (setting) => settings.get(setting)?.value,
    all: () => Object.fromEntries([...settings].map(([setting, { value }]) => [setting, value])),
    onChange: (listener) => {
      listeners.push(listener);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      watcher.stop();
      await consumed;
    },
  };
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
