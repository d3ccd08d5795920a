// The health manager's `health.*` settings (design.md): Cloud Foundry v1's
// defaults, overridden by the config store, overridden in turn by flags or
// environment. Kept in milliseconds inside the process; the store and the
// flags speak seconds, as design.md does.

export interface HealthSettings {
  /** An instance not heartbeated for this long is lost. */
  dropletLostMs: number;
  /** The crash counter of an index resets after this long without a crash. */
  flappingTimeoutMs: number;
  /** More crashes than this inside the window: the index is flapping. */
  flappingDeath: number;
  minRestartDelayMs: number;
  maxRestartDelayMs: number;
  /** More crashes than this inside the window: no more restarts until the app changes. */
  giveupCrashNumber: number;
  analysisIntervalMs: number;
}

interface SettingSpec {
  key: keyof HealthSettings;
  /** Name in the store (`health.<setting>`) and, with dashes, the flag. */
  setting: string;
  kind: 'seconds' | 'count';
  fallback: number;
  help: string;
}

export const SETTING_SPECS: readonly SettingSpec[] = [
  { key: 'dropletLostMs', setting: 'droplet_lost', kind: 'seconds', fallback: 30, help: 'seconds without a heartbeat before an instance counts as lost' },
  { key: 'flappingTimeoutMs', setting: 'flapping_timeout', kind: 'seconds', fallback: 500, help: 'seconds without a crash after which the crash counter resets' },
  { key: 'flappingDeath', setting: 'flapping_death', kind: 'count', fallback: 1, help: 'crashes inside the window beyond which an index is flapping' },
  { key: 'minRestartDelayMs', setting: 'min_restart_delay', kind: 'seconds', fallback: 60, help: 'seconds before the first delayed restart of a flapping index' },
  { key: 'maxRestartDelayMs', setting: 'max_restart_delay', kind: 'seconds', fallback: 480, help: 'longest delay before restarting a flapping index' },
  { key: 'giveupCrashNumber', setting: 'giveup_crash_number', kind: 'count', fallback: 4, help: 'crashes inside the window beyond which restarts stop until the app changes' },
  { key: 'analysisIntervalMs', setting: 'analysis_interval', kind: 'seconds', fallback: 10, help: 'seconds between comparisons of desired and actual state' },
];

export const DEFAULT_SETTINGS: HealthSettings = Object.fromEntries(
  SETTING_SPECS.map((spec) => [spec.key, spec.kind === 'seconds' ? spec.fallback * 1000 : spec.fallback]),
) as unknown as HealthSettings;

/** Longest accepted value of a seconds setting: a day. Anything longer is a typo, not a policy. */
const MAX_SECONDS = 86_400;
const MAX_COUNT = 1000;

/**
 * Converts one value from the store or a flag into the internal unit, or
 * returns an error text (naming the rule, never echoing the value).
 */
export function convertSetting(spec: SettingSpec, value: unknown): { ok: true; value: number } | { ok: false; error: string } {
  if (typeof value !== 'number' || !Number.isFinite(value)) return { ok: false, error: `health.${spec.setting} must be a number` };
  if (spec.kind === 'count') {
    if (!Number.isInteger(value) || value < 0 || value > MAX_COUNT) return { ok: false, error: `health.${spec.setting} must be an integer 0-${MAX_COUNT}` };
    return { ok: true, value };
  }
  // Analysis needs a positive period; the others may be 0 (restart at once, lost at once).
  const min = spec.key === 'analysisIntervalMs' ? 0.05 : 0;
  if (value < min || value > MAX_SECONDS) return { ok: false, error: `health.${spec.setting} must be ${min}-${MAX_SECONDS} seconds` };
  return { ok: true, value: Math.round(value * 1000) };
}

export function specFor(setting: string): SettingSpec | undefined {
  return SETTING_SPECS.find((spec) => spec.setting === setting);
}

/**
 * The settings in force: flag/environment overrides beat store values beat
 * defaults. Invalid store values are reported through `invalid` and the
 * default applies instead, so an operator's typo cannot stop the manager.
 */
export function resolveSettings(
  store: Record<string, unknown>,
  overrides: Partial<HealthSettings>,
  invalid: (setting: string, error: string) => void = () => {},
): HealthSettings {
  const settings = { ...DEFAULT_SETTINGS };
  for (const spec of SETTING_SPECS) {
    const override = overrides[spec.key];
    if (override !== undefined) {
      settings[spec.key] = override;
      continue;
    }
    const raw = store[spec.setting];
    if (raw === undefined) continue;
    const converted = convertSetting(spec, raw);
    if (converted.ok) settings[spec.key] = converted.value;
    else invalid(spec.setting, converted.error);
  }
  if (settings.maxRestartDelayMs < settings.minRestartDelayMs) {
    invalid('max_restart_delay', 'health.max_restart_delay is below health.min_restart_delay: using min_restart_delay for both');
    settings.maxRestartDelayMs = settings.minRestartDelayMs;
  }
  return settings;
}
