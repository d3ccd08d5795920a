import { homedir } from 'node:os';
import { join } from 'node:path';
import { NODE_FLAG, nodeName } from '../bus/component';
import { parseFlags, UsageError, type FlagSpec } from '../bus/flags';
import { METRICS_FLAGS, metricsOptions, type MetricsOptions } from '../bus/metrics-server';
import { NATS_FLAGS, natsTarget, type NatsAuth } from '../bus/nats-options';
import { DEFAULT_SERVICE_IDS, formatRange, parseUidRange, type IdRange } from '../bus/uids';
import type { ServicesNodeOptions } from './node';

export const ENV_PREFIX = 'SKIFF_SERVICES';

export const DEFAULT_SERVICE_PORTS: IdRange = { first: 62000, last: 62999 };

export const SERVICES_FLAGS: readonly FlagSpec[] = [
  ...NATS_FLAGS,
  NODE_FLAG,
  { name: 'data-dir', kind: 'string', help: 'platform data directory; the services node keeps <data-dir>/services/', defaultText: '~/.skiff/data, /var/lib/skiff as root' },
  { name: 'host', kind: 'string', help: 'address the backends listen on, and that credentials name (apps on other hosts reach them there)', defaultText: '127.0.0.1' },
  { name: 'ports', kind: 'string', help: 'ports of redis-servers and the PostgreSQL cluster, FIRST-LAST', defaultText: formatRange(DEFAULT_SERVICE_PORTS) },
  { name: 'service-ids', kind: 'string', help: 'ids of service instances, FIRST-LAST: a redis-server\'s uid, a filesystem directory\'s gid (the DEA\'s --service-gids)', defaultText: formatRange(DEFAULT_SERVICE_IDS) },
  { name: 'sweep-interval', kind: 'number', min: 1, max: 86400, help: 'seconds between sweeps for strays (what no service instance names)', defaultText: '300' },
  ...METRICS_FLAGS,
];

/** What the node itself takes (node.ts), and how the process reaches the bus and Prometheus. */
export interface ServicesOptions extends ServicesNodeOptions {
  help: boolean;
  nats: string;
  natsAuth: NatsAuth | undefined;
  metrics: MetricsOptions;
}

function parsePorts(text: string, origin: string): IdRange {
  const match = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const first = Number(match?.[1]);
  const last = Number(match?.[2]);
  if (!match || first < 1024 || last > 65535 || first > last) {
    throw new UsageError(`${origin} must be FIRST-LAST with 1024 <= FIRST <= LAST <= 65535, got ${JSON.stringify(text)}`);
  }
  return { first, last };
}

export function parseServicesOptions(argv: string[], env: NodeJS.ProcessEnv): ServicesOptions {
  const parsed = parseFlags(argv, SERVICES_FLAGS, ENV_PREFIX, env);
  const { values, sources, positionals } = parsed;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const origin = (flag: string) => (sources[flag] === 'env' ? `${ENV_PREFIX}_${flag.replace(/-/g, '_').toUpperCase()}` : `--${flag}`);
  const host = (values.host as string | undefined) ?? '127.0.0.1';
  if (!/^[A-Za-z0-9][A-Za-z0-9.:-]*$/.test(host) || host === '0.0.0.0' || host === '::') {
    throw new UsageError(`${origin('host')} must be the address apps reach the backends at (not a wildcard), got ${JSON.stringify(host)}`);
  }
  const isRoot = process.getuid?.() === 0;
  return {
    help: values.help === true,
    ...natsTarget(parsed, env),
    node: nodeName(values.node, sources.node === 'env' ? 'SKIFF_NODE' : '--node'),
    dataDir: (values['data-dir'] as string | undefined) ?? (isRoot ? '/var/lib/skiff' : join(env.HOME || homedir(), '.skiff', 'data')),
    host,
    ports: values.ports === undefined ? DEFAULT_SERVICE_PORTS : parsePorts(values.ports as string, origin('ports')),
    serviceIds: values['service-ids'] === undefined ? DEFAULT_SERVICE_IDS : parseUidRange(values['service-ids'] as string, origin('service-ids')),
    sweepIntervalMs: ((values['sweep-interval'] as number | undefined) ?? 300) * 1000,
    metrics: metricsOptions(parsed, ENV_PREFIX),
  };
}
