import { NODE_FLAG, nodeName } from '../../bus/component';
import { parseFlags, UsageError, type FlagSpec } from '../../bus/flags';
import { METRICS_FLAGS, metricsOptions, type MetricsOptions } from '../../bus/metrics-server';
import { NATS_FLAGS, natsTarget, type NatsAuth } from '../../bus/nats-options';
import { convertSetting, SETTING_SPECS, type HealthSettings } from './settings';

export const ENV_PREFIX = 'SKIFF_HEALTH';

/** `--droplet-lost` for `health.droplet_lost`, and so on. */
function flagName(setting: string): string {
  return setting.replace(/_/g, '-');
}

export const HEALTH_FLAGS: readonly FlagSpec[] = [
  ...NATS_FLAGS,
  NODE_FLAG,
  ...SETTING_SPECS.map((spec): FlagSpec => ({
    name: flagName(spec.setting),
    kind: 'number',
    min: spec.def.min,
    max: spec.def.max,
    help: `${spec.def.description}${spec.def.unit === undefined ? '' : ` (${spec.def.unit})`}; overrides health.${spec.setting}`,
    defaultText: `health.${spec.setting}, else ${spec.def.default}`,
  })),
  ...METRICS_FLAGS,
];

export interface HealthOptions {
  help: boolean;
  nats: string;
  natsAuth: NatsAuth | undefined;
  /** The node this manager runs on (`skiff nodes`). */
  node: string;
  /** Only the settings given by flag or environment. */
  overrides: Partial<HealthSettings>;
  metrics: MetricsOptions;
}

export function parseHealthOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): HealthOptions {
  const parsed = parseFlags(argv, HEALTH_FLAGS, ENV_PREFIX, env);
  const { values, sources, positionals } = parsed;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const overrides: Partial<HealthSettings> = {};
  for (const spec of SETTING_SPECS) {
    const value = values[flagName(spec.setting)];
    if (value === undefined) continue;
    const converted = convertSetting(spec, value);
    if (!converted.ok) throw new UsageError(`--${flagName(spec.setting)}: ${converted.error.replace(`health.${spec.setting} `, '')}`);
    overrides[spec.key] = converted.value;
  }
  return {
    help: values.help === true,
    ...natsTarget(parsed, env),
    node: nodeName(values.node, sources.node === 'env' ? 'SKIFF_NODE' : '--node'),
    overrides,
    metrics: metricsOptions(parsed, ENV_PREFIX),
  };
}
