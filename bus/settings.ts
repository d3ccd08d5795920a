// Every key of the config store (`skiff_config`): its type, bounds, default,
// meaning and the component that applies it. The controller refuses a value
// this registry refuses (so `skiff config set` never stores one a component
// would ignore), the components check what they read with it (a value put
// straight into the bucket may still be anything), and the README's table of
// keys is generated from it (a test compares them).

export type SettingComponent = 'router' | 'controller' | 'stager' | 'dea' | 'health' | 'autoscale' | 'bench';

export interface SettingDef {
  key: string;
  type: 'integer' | 'number' | 'choice';
  min?: number;
  max?: number;
  choices?: readonly string[];
  default: number | string;
  /** Shown after numbers in the README: "seconds", "MB". */
  unit?: string;
  description: string;
  /** Who applies it, for the README. */
  appliedBy: string;
}

const HEALTH = 'health manager';
/** Longest accepted seconds value of a health setting: a day. Anything longer is a typo, not a policy. */
const DAY = 86_400;

export const SETTINGS: readonly SettingDef[] = [
  { key: 'router.lb_algorithm', type: 'choice', choices: ['round-robin', 'least-connection'], default: 'round-robin', appliedBy: 'router', description: "load balancing of routes whose registration names none (`--lb` overrides it)" },
  { key: 'router.max_conns_per_backend', type: 'integer', min: 1, max: 1_000_000, default: 500, appliedBy: 'router', description: 'concurrent requests per app instance; beyond, 503 `Connection Limit Reached` (`--max-conns-per-backend` overrides it)' },
  { key: 'stager.max_jobs', type: 'integer', min: 1, max: 64, default: 2, appliedBy: 'stager', description: 'jobs a stager stages at the same time (`--max-jobs` overrides it)' },
  { key: 'stager.command_timeout', type: 'number', min: 1, max: DAY, default: 900, unit: 'seconds', appliedBy: 'stager', description: 'time each staging command (npm install, pip install) may run (`--command-timeout` overrides it)' },
  { key: 'dea.max_memory_mb', type: 'integer', min: 1, max: 16_777_216, default: 4096, unit: 'MB', appliedBy: 'DEA', description: 'memory a DEA offers to app instances (`--memory` overrides it)' },
  { key: 'health.droplet_lost', type: 'number', min: 0, max: DAY, default: 30, unit: 'seconds', appliedBy: HEALTH, description: 'without a heartbeat for this long an instance counts as lost' },
  { key: 'health.flapping_timeout', type: 'number', min: 0, max: DAY, default: 500, unit: 'seconds', appliedBy: HEALTH, description: 'without a crash for this long the crash counter of an index resets' },
  { key: 'health.flapping_death', type: 'integer', min: 0, max: 1000, default: 1, appliedBy: HEALTH, description: 'more crashes than this inside the window: the index is flapping and its restarts back off' },
  { key: 'health.min_restart_delay', type: 'number', min: 0, max: DAY, default: 60, unit: 'seconds', appliedBy: HEALTH, description: 'first back-off of a flapping index, doubled at each further crash' },
  { key: 'health.max_restart_delay', type: 'number', min: 0, max: DAY, default: 480, unit: 'seconds', appliedBy: HEALTH, description: 'longest back-off of a flapping index (not below `health.min_restart_delay`)' },
  { key: 'health.giveup_crash_number', type: 'integer', min: 0, max: 1000, default: 4, appliedBy: HEALTH, description: 'more crashes than this inside the window: no more restarts until the app is changed' },
  { key: 'health.analysis_interval', type: 'number', min: 0.05, max: DAY, default: 10, unit: 'seconds', appliedBy: HEALTH, description: 'time between comparisons of desired and actual state' },
  { key: 'autoscale.interval', type: 'number', min: 1, max: 3600, default: 5, unit: 'seconds', appliedBy: HEALTH, description: "time between the autoscaler's looks at each app with a policy (`skiff autoscale`)" },
  { key: 'autoscale.scale_in_delay', type: 'number', min: 0, max: DAY, default: 300, unit: 'seconds', appliedBy: HEALTH, description: 'an app scales in only after its figures stayed below its targets this long' },
  { key: 'bench.max_duration', type: 'integer', min: 1, max: 3600, default: 60, unit: 'seconds', appliedBy: 'controller', description: 'longest `skiff bench` run; a longer `--duration` is refused' },
  { key: 'bench.max_connections', type: 'integer', min: 1, max: 10_000, default: 100, appliedBy: 'controller', description: 'most connections of a `skiff bench` run; more `--connections` are refused' },
];

const BY_KEY = new Map(SETTINGS.map((def) => [def.key, def]));

export function settingDef(key: string): SettingDef | undefined {
  return BY_KEY.get(key);
}

/** The registry entry of a key, or throws: for code that names a key it knows. */
export function knownSetting(key: string): SettingDef {
  const def = BY_KEY.get(key);
  if (def === undefined) throw new Error(`${key} is not in bus/settings.ts`);
  return def;
}

export type SettingCheck = { ok: true; value: number | string } | { ok: false; error: string };

/**
 * Checks a JSON value against its key's rule. The error names the key and the
 * rule, never the value (it ends up in logs).
 */
export function checkSetting(key: string, value: unknown): SettingCheck {
  const def = BY_KEY.get(key);
  if (def === undefined) return { ok: false, error: `unknown setting ${key}` };
  return checkValue(def, value);
}

export function checkValue(def: SettingDef, value: unknown): SettingCheck {
  if (def.type === 'choice') {
    if (typeof value !== 'string' || !def.choices!.includes(value)) return { ok: false, error: `${def.key} must be one of ${def.choices!.join(', ')}` };
    return { ok: true, value };
  }
  const range = `${def.min}-${def.max}${def.unit === undefined ? '' : ` ${def.unit}`}`;
  if (typeof value !== 'number' || !Number.isFinite(value)) return { ok: false, error: `${def.key} must be a number (${range})` };
  if (def.type === 'integer' && !Number.isInteger(value)) return { ok: false, error: `${def.key} must be a whole number ${range}` };
  if (value < def.min! || value > def.max!) return { ok: false, error: `${def.key} must be ${def.type === 'integer' ? 'a whole number ' : ''}${range}` };
  return { ok: true, value };
}

/**
 * Rules between keys, checked on a change with the other values in force
 * (stored, else default): a pair a component would have to repair is refused.
 */
export function checkRelations(key: string, value: unknown, current: (key: string) => unknown): string | undefined {
  const min = key === 'health.min_restart_delay' ? value : current('health.min_restart_delay') ?? knownSetting('health.min_restart_delay').default;
  const max = key === 'health.max_restart_delay' ? value : current('health.max_restart_delay') ?? knownSetting('health.max_restart_delay').default;
  if ((key === 'health.min_restart_delay' || key === 'health.max_restart_delay') && typeof min === 'number' && typeof max === 'number' && max < min) {
    return `health.max_restart_delay (${max}) must not be below health.min_restart_delay (${min}): change the other one first`;
  }
  return undefined;
}

/** The README's table of keys (Markdown). */
export function settingsTable(): string {
  const rows = ['| key | default | values | meaning | applied by |', '|---|---|---|---|---|'];
  for (const def of SETTINGS) {
    const values =
      def.type === 'choice' ? def.choices!.map((c) => `\`${c}\``).join(', ')
      : `${def.type === 'integer' ? 'whole number' : 'number'} ${def.min}-${def.max}${def.unit === undefined ? '' : ` (${def.unit})`}`;
    const dflt = typeof def.default === 'string' ? `\`${def.default}\`` : String(def.default);
    rows.push(`| \`${def.key}\` | ${dflt} | ${values} | ${def.description} | ${def.appliedBy} |`);
  }
  return rows.join('\n');
}
