// `/config`: the config store (`skiff_config`) as the API shows and changes
// it. Only keys of bus/settings.ts with a value their rule accepts are
// written, one key per request, so a refused change leaves the store as it was.

import type { KV } from 'nats';
import { openConfigBucket, parseSettingKey } from '../../bus/config';
import type { Bus } from '../../bus/connection';
import { isLive, liveKeys } from '../../bus/jetstream';
import { checkRelations, checkSetting, settingDef, SETTINGS } from '../../bus/settings';
import { HttpError } from './http';

export interface ConfigEntry {
  key: string;
  /** The stored value, else the default (null for an unknown key that is not stored). */
  value: unknown;
  /** True when the store holds a value for the key. */
  set: boolean;
  /** False for a key no component reads (written around the API). */
  known: boolean;
  default?: unknown;
  component?: string;
  description?: string;
  /** Why the components ignore the stored value (it fails the key's rule, or is not JSON). */
  invalid?: string;
}

type Stored = { ok: true; value: unknown } | { ok: false };

export class ClusterConfig {
  private constructor(private readonly kv: KV) {}

  static async open(bus: Bus): Promise<ClusterConfig> {
    return new ClusterConfig(await openConfigBucket(bus));
  }

  async list(prefix = ''): Promise<ConfigEntry[]> {
    const stored = new Set(await liveKeys(this.kv));
    const keys = new Set([...SETTINGS.map((def) => def.key), ...stored]);
    const entries: ConfigEntry[] = [];
    for (const key of [...keys].sort()) {
      if (!key.startsWith(prefix)) continue;
      const entry = await this.entry(key, stored.has(key) ? await this.read(key) : undefined);
      if (entry !== undefined) entries.push(entry);
    }
    return entries;
  }

  /** undefined: neither known nor stored. */
  async get(key: string): Promise<ConfigEntry | undefined> {
    checkKeyForm(key);
    return this.entry(key, await this.read(key));
  }

  async set(key: string, value: unknown): Promise<ConfigEntry> {
    checkKeyForm(key);
    if (settingDef(key) === undefined) throw unknownKey(key);
    if (value === undefined) throw new HttpError(400, 'the body must be {"value": <JSON value>}');
    const checked = checkSetting(key, value);
    if (!checked.ok) throw new HttpError(400, checked.error);
    const others = new Map<string, unknown>();
    for (const related of ['health.min_restart_delay', 'health.max_restart_delay']) {
      const stored = await this.read(related);
      if (stored?.ok && checkSetting(related, stored.value).ok) others.set(related, stored.value);
    }
    const conflict = checkRelations(key, checked.value, (other) => others.get(other));
    if (conflict !== undefined) throw new HttpError(400, conflict);
    await this.kv.put(key, JSON.stringify(checked.value));
    return (await this.entry(key, { ok: true, value: checked.value }))!;
  }

  /** False when there was nothing to remove. Unknown keys that are stored may be removed (cleaning up). */
  async unset(key: string): Promise<boolean> {
    checkKeyForm(key);
    const stored = await this.read(key);
    if (stored === undefined && settingDef(key) === undefined) throw unknownKey(key);
    if (stored === undefined) return false;
    await this.kv.delete(key);
    return true;
  }

  private async read(key: string): Promise<Stored | undefined> {
    const entry = await this.kv.get(key);
    if (!isLive(entry)) return undefined;
    try {
      return { ok: true, value: JSON.parse(new TextDecoder().decode(entry.value)) };
    } catch {
      return { ok: false };
    }
  }

  private async entry(key: string, stored: Stored | undefined): Promise<ConfigEntry | undefined> {
    const def = settingDef(key);
    if (def === undefined && stored === undefined) return undefined;
    const entry: ConfigEntry = {
      key,
      value: stored?.ok ? stored.value : stored !== undefined ? null : def!.default,
      set: stored !== undefined,
      known: def !== undefined,
    };
    if (def !== undefined) {
      entry.default = def.default;
      entry.component = parseSettingKey(key).component;
      entry.description = def.description;
    }
    if (stored !== undefined && !stored.ok) entry.invalid = 'the stored value is not JSON';
    else if (stored !== undefined && def !== undefined) {
      const checked = checkSetting(key, stored.value);
      if (!checked.ok) entry.invalid = checked.error;
    } else if (def === undefined) entry.invalid = 'no component reads this key';
    return entry;
  }
}

function checkKeyForm(key: string): void {
  try {
    parseSettingKey(key);
  } catch (error) {
    throw new HttpError(400, (error as Error).message);
  }
}

function unknownKey(key: string): HttpError {
  return new HttpError(400, `unknown setting ${key} (skiff config list shows every key)`);
}
