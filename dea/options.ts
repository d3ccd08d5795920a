import { homedir } from 'node:os';
import { join } from 'node:path';
import { NODE_FLAG, nodeName } from '../bus/component';
import { parseFlags, UsageError, type FlagSpec } from '../bus/flags';
import { METRICS_FLAGS, metricsOptions, type MetricsOptions } from '../bus/metrics-server';
import { NATS_FLAGS, natsTarget, type NatsAuth } from '../bus/nats-options';
import { knownSetting } from '../bus/settings';
import { DEFAULT_APP_UIDS, DEFAULT_SERVICE_IDS, formatRange, parseUidRange, type IdRange } from '../bus/uids';

export const ENV_PREFIX = 'SKIFF_DEA';

export const DEA_FLAGS: readonly FlagSpec[] = [
  ...NATS_FLAGS,
  NODE_FLAG,
  { name: 'data-dir', kind: 'string', help: 'platform data directory; the DEA keeps <data-dir>/dea/<index>/', defaultText: '~/.skiff/data, /var/lib/skiff as root' },
  { name: 'memory', kind: 'number', min: knownSetting('dea.max_memory_mb').min, max: knownSetting('dea.max_memory_mb').max, help: 'MB of memory offered to app instances; overrides dea.max_memory_mb', defaultText: '4096' },
  { name: 'host', kind: 'string', help: 'address apps listen on and routers reach them at', defaultText: '127.0.0.1' },
  { name: 'port-range', kind: 'string', help: 'ports handed to app instances, FIRST-LAST', defaultText: '61000-61999' },
  { name: 'start-timeout', kind: 'number', min: 0.1, max: 3600, help: 'seconds an instance gets to accept TCP connections before it is killed as CRASHED', defaultText: '60' },
  { name: 'stop-grace', kind: 'number', min: 0, max: 3600, help: 'seconds between SIGTERM and SIGKILL when stopping an instance', defaultText: '10' },
  { name: 'index', kind: 'number', min: 0, max: 9999, help: 'index of this DEA on the machine (names its directory and route tag dea-<index>)', defaultText: '0' },
  { name: 'user', kind: 'string', help: 'unprivileged user app instances run as when the DEA runs as root', defaultText: 'nobody' },
  { name: 'crash-keep', kind: 'number', min: 0, help: 'seconds a crashed instance stays listable, with its files', defaultText: '3600' },
  { name: 'app-uids', kind: 'string', help: 'uids apps may run as (each app its own, chosen by the controller); a start with a uid outside is refused', defaultText: formatRange(DEFAULT_APP_UIDS) },
  { name: 'service-gids', kind: 'string', help: 'groups a bound service may give an app\'s processes (the filesystem service\'s shared directories); a start with a gid outside is refused', defaultText: formatRange(DEFAULT_SERVICE_IDS) },
  ...METRICS_FLAGS,
];

export interface DeaOptions {
  help: boolean;
  nats: string;
  natsAuth: NatsAuth | undefined;
  /** The node this DEA runs on (`skiff nodes`). */
  node: string;
  dataDir: string;
  /** Undefined unless given by flag or environment: then the config store decides. */
  memoryMb: number | undefined;
  host: string;
  portRange: { first: number; last: number };
  startTimeoutMs: number;
  stopGraceMs: number;
  index: number;
  /** Undefined unless given: `nobody` when running as root, the DEA's own user otherwise. */
  user: string | undefined;
  crashKeepMs: number;
  /** The uids the controller may ask an instance to run as (as root). */
  appUids: IdRange;
  /** The supplementary groups a start's bound services may give an instance. */
  serviceGids: IdRange;
  metrics: MetricsOptions;
}

export const DEFAULT_MEMORY_MB = knownSetting('dea.max_memory_mb').default as number;

export function defaultDataDir(isRoot: boolean, home: string = homedir()): string {
  return isRoot ? '/var/lib/skiff' : join(home, '.skiff', 'data');
}

export function parsePortRange(text: string, origin = '--port-range'): { first: number; last: number } {
  const match = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  if (!match) throw new UsageError(`${origin} must look like 61000-61999, got ${JSON.stringify(text)}`);
  const first = Number(match[1]);
  const last = Number(match[2]);
  if (first < 1 || last > 65535 || first > last) {
    throw new UsageError(`${origin} must be FIRST-LAST with 1 <= FIRST <= LAST <= 65535, got ${first}-${last}`);
  }
  return { first, last };
}

export function parseDeaOptions(argv: string[], env: NodeJS.ProcessEnv, isRoot: boolean): DeaOptions {
  const parsed = parseFlags(argv, DEA_FLAGS, ENV_PREFIX, env);
  const { values, sources, positionals } = parsed;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const num = (name: string, fallback: number): number => (values[name] as number | undefined) ?? fallback;
  const str = (name: string, fallback: string): string => (values[name] as string | undefined) ?? fallback;
  const index = num('index', 0);
  if (!Number.isInteger(index)) throw new UsageError(`--index must be a whole number, got ${index}`);
  const rangeText = values['port-range'] as string | undefined;
  const rangeOrigin = sources['port-range'] === 'env' ? 'SKIFF_DEA_PORT_RANGE' : '--port-range';
  return {
    help: values.help === true,
    ...natsTarget(parsed, env),
    node: nodeName(values.node, sources.node === 'env' ? 'SKIFF_NODE' : '--node'),
    dataDir: str('data-dir', defaultDataDir(isRoot, env.HOME || homedir())),
    memoryMb: values.memory as number | undefined,
    host: str('host', '127.0.0.1'),
    portRange: rangeText === undefined ? { first: 61000, last: 61999 } : parsePortRange(rangeText, rangeOrigin),
    startTimeoutMs: num('start-timeout', 60) * 1000,
    stopGraceMs: num('stop-grace', 10) * 1000,
    index,
    user: values.user as string | undefined,
    crashKeepMs: num('crash-keep', 3600) * 1000,
    appUids: values['app-uids'] === undefined
      ? DEFAULT_APP_UIDS
      : parseUidRange(values['app-uids'] as string, sources['app-uids'] === 'env' ? `${ENV_PREFIX}_APP_UIDS` : '--app-uids'),
    serviceGids: values['service-gids'] === undefined
      ? DEFAULT_SERVICE_IDS
      : parseUidRange(values['service-gids'] as string, sources['service-gids'] === 'env' ? `${ENV_PREFIX}_SERVICE_GIDS` : '--service-gids'),
    metrics: metricsOptions(parsed, ENV_PREFIX),
  };
}
