import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_FLAG, nodeName } from '../../bus/component';
import { envName, parseFlags, UsageError, type FlagSpec } from '../../bus/flags';
import { METRICS_FLAGS, metricsOptions, type MetricsOptions } from '../../bus/metrics-server';
import { NATS_FLAGS, natsTarget, type NatsAuth } from '../../bus/nats-options';
import { knownSetting } from '../../bus/settings';
import { DEFAULT_STAGER_QUEUE } from '../../bus/platform';
import { DEFAULT_BUILD_UIDS, formatRange, parseUidRange, type IdRange } from '../../bus/uids';

export const ENV_PREFIX = 'SKIFF_STAGER';

export const STAGER_FLAGS: readonly FlagSpec[] = [
  ...NATS_FLAGS,
  NODE_FLAG,
  { name: 'queue', kind: 'string', help: 'take jobs from vcap.stager.<queue>', defaultText: DEFAULT_STAGER_QUEUE },
  { name: 'work-dir', kind: 'string', help: 'where jobs unpack and build (one fresh directory per job, removed after)', defaultText: '$TMPDIR/skiff-stager' },
  { name: 'max-jobs', kind: 'number', min: knownSetting('stager.max_jobs').min, max: knownSetting('stager.max_jobs').max, help: 'jobs staged at the same time', defaultText: '2' },
  { name: 'max-waiting', kind: 'number', min: 0, max: 10000, help: 'jobs queued for a free slot; beyond, requests are refused as busy', defaultText: '20' },
  { name: 'command-timeout', kind: 'number', min: knownSetting('stager.command_timeout').min, max: knownSetting('stager.command_timeout').max, help: 'seconds each staging command (npm install, pip install) may run', defaultText: '900' },
  { name: 'max-package-mb', kind: 'number', min: 1, help: 'largest app package accepted', defaultText: '512' },
  { name: 'max-unpacked-mb', kind: 'number', min: 1, help: 'largest size of an app package once unpacked', defaultText: '1024' },
  { name: 'max-files', kind: 'number', min: 1, help: 'most entries in an app package', defaultText: '100000' },
  { name: 'build-uids', kind: 'string', help: 'uids FIRST-LAST for build steps, one per job (when the stager runs as root)', defaultText: formatRange(DEFAULT_BUILD_UIDS) },
  ...METRICS_FLAGS,
];

export interface StagerOptions {
  help: boolean;
  nats: string;
  natsAuth: NatsAuth | undefined;
  /** The node this stager runs on (`skiff nodes`). */
  node: string;
  queue: string;
  workDir: string;
  maxJobs: number;
  maxWaiting: number;
  commandTimeoutMs: number;
  /** Settings given by flag or environment, which the config store does not override. */
  pinned: { maxJobs: boolean; commandTimeout: boolean };
  maxPackageBytes: number;
  maxUnpackedBytes: number;
  maxFiles: number;
  buildUids: IdRange;
  metrics: MetricsOptions;
}

const MiB = 1024 * 1024;

export function parseStagerOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): StagerOptions {
  const parsed = parseFlags(argv, STAGER_FLAGS, ENV_PREFIX, env);
  const { values, sources, positionals } = parsed;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const num = (name: string, fallback: number): number => (values[name] as number | undefined) ?? fallback;
  const int = (name: string, fallback: number): number => {
    const n = num(name, fallback);
    if (!Number.isInteger(n)) throw new UsageError(`--${name} must be a whole number, got ${n}`);
    return n;
  };
  const queue = (values.queue as string | undefined) ?? DEFAULT_STAGER_QUEUE;
  // One NATS token: a dot or wildcard would make it another subject, or many.
  if (!/^[A-Za-z0-9_-]+$/.test(queue)) throw new UsageError(`--queue must be letters, digits, '-' or '_', got ${JSON.stringify(queue)}`);
  return {
    help: values.help === true,
    ...natsTarget(parsed, env),
    node: nodeName(values.node, sources.node === 'env' ? 'SKIFF_NODE' : '--node'),
    queue,
    workDir: (values['work-dir'] as string | undefined) ?? join(tmpdir(), 'skiff-stager'),
    maxJobs: int('max-jobs', knownSetting('stager.max_jobs').default as number),
    maxWaiting: int('max-waiting', 20),
    commandTimeoutMs: num('command-timeout', knownSetting('stager.command_timeout').default as number) * 1000,
    maxPackageBytes: num('max-package-mb', 512) * MiB,
    maxUnpackedBytes: num('max-unpacked-mb', 1024) * MiB,
    maxFiles: int('max-files', 100_000),
    buildUids: values['build-uids'] === undefined
      ? DEFAULT_BUILD_UIDS
      : parseUidRange(values['build-uids'] as string, sources['build-uids'] === 'env' ? envName(ENV_PREFIX, 'build-uids') : '--build-uids'),
    pinned: { maxJobs: values['max-jobs'] !== undefined, commandTimeout: values['command-timeout'] !== undefined },
    metrics: metricsOptions(parsed, ENV_PREFIX),
  };
}
