// The health manager's `health.*` settings (design.md): Cloud Foundry v1's
// defaults, overridden by the config store, overridden in turn by flags or
// environment. Kept in milliseconds inside the process; the store and the
// flags speak seconds, as design.md does.

import { checkValue, knownSetting, type SettingDef } from '../../bus/settings';

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
  /** Bounds, default and meaning: bus/settings.ts. */
  def: SettingDef;
}

function spec(key: keyof HealthSettings, setting: string, kind: SettingSpec['kind']): SettingSpec {
  return { key, setting, kind, def: knownSetting(`health.${setting}`) };
}

export const SETTING_SPECS: readonly SettingSpec[] = [
  spec('dropletLostMs', 'droplet_lost', 'seconds'),
  spec('flappingTimeoutMs', 'flapping_timeout', 'seconds'),
  spec('flappingDeath', 'flapping_death', 'count'),
  spec('minRestartDelayMs', 'min_restart_delay', 'seconds'),
  spec('maxRestartDelayMs', 'max_restart_delay', 'seconds'),
  spec('giveupCrashNumber', 'giveup_crash_number', 'count'),
  spec('analysisIntervalMs', 'analysis_interval', 'seconds'),
];

export const DEFAULT_SETTINGS: HealthSettings = Object.fromEntries(
  SETTING_SPECS.map((spec) => [spec.key, toInternal(spec, spec.def.default as number)]),
) as unknown as HealthSettings;

function toInternal(spec: SettingSpec, value: number): number {
  return spec.kind === 'seconds' ? Math.round(value * 1000) : value;
}

/**
 * Converts one value from the store or a flag into the internal unit, or
 * returns an error text (naming the rule, never echoing the value).
 */
export function convertSetting(spec: SettingSpec, value: unknown): { ok: true; value: number } | { ok: false; error: string } {
  const checked = checkValue(spec.def, value);
  if (!checked.ok) return checked;
  return { ok: true, value: toInternal(spec, checked.value as number) };
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
