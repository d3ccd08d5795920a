import { NODE_FLAG, nodeName } from '../../bus/component';
import { parseFlags, UsageError, type FlagSpec } from '../../bus/flags';
import { METRICS_FLAGS, metricsOptions, type MetricsOptions } from '../../bus/metrics-server';
import { NATS_FLAGS, natsTarget, type NatsAuth } from '../../bus/nats-options';
import { DEFAULT_APP_UIDS, formatRange, parseUidRange, type IdRange } from '../../bus/uids';

export const ENV_PREFIX = 'SKIFF_CONTROLLER';

export const CONTROLLER_FLAGS: readonly FlagSpec[] = [
  { name: 'port', kind: 'number', min: 0, max: 65535, help: 'port of the REST API', defaultText: '9022' },
  { name: 'host', kind: 'string', help: 'address to listen on, also the address registered with the routers', defaultText: '127.0.0.1' },
  ...NATS_FLAGS,
  NODE_FLAG,
  { name: 'domain', kind: 'string', help: 'apps get <name>.<domain>; the API registers as api.<domain>', defaultText: 'localhost' },
  { name: 'router-url', kind: 'string', help: 'where apps are reached, reported in /info for `skiff push` to print', defaultText: 'http://<domain>:8080' },
  { name: 'max-upload-mb', kind: 'number', min: 1, max: 16384, help: 'largest app package accepted (MiB)', defaultText: '512' },
  { name: 'upload-dir', kind: 'string', help: 'where uploads are spooled before they go to the object store', defaultText: 'the system temp dir' },
  { name: 'stager-queue', kind: 'string', help: 'stager queue: requests go to vcap.stager.<queue>', defaultText: 'default' },
  { name: 'staging-timeout', kind: 'number', min: 1, max: 86400, help: 'seconds a staging job may take', defaultText: '900' },
  { name: 'reconcile-interval', kind: 'number', min: 0.1, max: 3600, help: 'seconds between passes that restart missing instances of started apps', defaultText: '10' },
  { name: 'find-window-ms', kind: 'number', min: 50, max: 10000, help: 'how long to collect dea.find.droplet replies', defaultText: '500' },
  { name: 'user-memory-mb', kind: 'number', min: 16, help: 'memory limit of all started instances of one (non-admin) user', defaultText: '16384' },
  { name: 'user-apps', kind: 'number', min: 1, help: 'app limit of one (non-admin) user', defaultText: '50' },
  { name: 'node-timeout', kind: 'number', min: 1, max: 3600, help: 'seconds without an answer to vcap.component.discover after which a node shows as down', defaultText: '40' },
  { name: 'app-uids', kind: 'string', help: 'uids handed to apps, one per app, FIRST-LAST (the DEAs\' --app-uids must hold them)', defaultText: formatRange(DEFAULT_APP_UIDS) },
  { name: 'service-timeout', kind: 'number', min: 1, max: 3600, help: 'seconds a services node may take to create a service (other requests: half of it, 30 s at most); a step left half-done is finished by a reconcile pass after about this long', defaultText: '60' },
  ...METRICS_FLAGS,
];

export interface ControllerOptions {
  port: number;
  host: string;
  nats: string;
  natsAuth: NatsAuth | undefined;
  /** The node this controller runs on (`skiff nodes`). */
  node: string;
  domain: string;
  /** Where apps are reached (`http://<domain>:<router port>`), reported in /info. */
  routerUrl: string;
  maxUploadBytes: number;
  uploadDir: string | undefined;
  stagerQueue: string;
  stagingTimeoutMs: number;
  reconcileIntervalMs: number;
  findWindowMs: number;
  /** A node silent this long shows as down in `GET /nodes`. */
  nodeTimeoutMs: number;
  limits: { memory: number; apps: number };
  /** Each app gets one uid of this range when created (uids.ts). */
  appUids: IdRange;
  /** How long a services node may take to provision (services.ts). */
  serviceTimeoutMs: number;
  /** From SKIFF_ADMIN_EMAIL / SKIFF_ADMIN_PASSWORD: created when no user exists. */
  admin: { email: string; password: string } | undefined;
  /** The controller's own figures on a port of their own (the cluster's are on the API's GET /metrics). */
  metrics: MetricsOptions;
}

const DOMAIN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const QUEUE = /^[A-Za-z0-9_-]+$/;

export function parseControllerOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): ControllerOptions & { help: boolean } {
  const parsed = parseFlags(argv, CONTROLLER_FLAGS, ENV_PREFIX, env);
  const { values, sources, positionals } = parsed;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const num = (name: string, fallback: number): number => (values[name] as number | undefined) ?? fallback;
  const str = (name: string, fallback: string): string => (values[name] as string | undefined) ?? fallback;
  const domain = str('domain', 'localhost').toLowerCase();
  if (!DOMAIN.test(domain)) throw new UsageError(`--domain must be a host name, got ${JSON.stringify(domain)}`);
  const routerUrl = str('router-url', `http://${domain}:8080`).replace(/\/+$/, '');
  if (!/^https?:\/\/[^\s/]+$/.test(routerUrl)) throw new UsageError(`--router-url must be http(s)://host[:port], got ${JSON.stringify(routerUrl)}`);
  const queue = str('stager-queue', 'default');
  if (!QUEUE.test(queue)) throw new UsageError(`--stager-queue must be letters, digits, '-' or '_', got ${JSON.stringify(queue)}`);
  const email = env.SKIFF_ADMIN_EMAIL?.trim();
  const password = env.SKIFF_ADMIN_PASSWORD;
  if ((email === undefined || email === '') !== (password === undefined || password === '')) {
    throw new UsageError('set both SKIFF_ADMIN_EMAIL and SKIFF_ADMIN_PASSWORD, or neither');
  }
  return {
    help: values.help === true,
    port: num('port', 9022),
    host: str('host', '127.0.0.1'),
    ...natsTarget(parsed, env),
    node: nodeName(values.node, sources.node === 'env' ? 'SKIFF_NODE' : '--node'),
    domain,
    routerUrl,
    maxUploadBytes: num('max-upload-mb', 512) * 1024 * 1024,
    uploadDir: values['upload-dir'] as string | undefined,
    stagerQueue: queue,
    stagingTimeoutMs: num('staging-timeout', 900) * 1000,
    reconcileIntervalMs: num('reconcile-interval', 10) * 1000,
    findWindowMs: num('find-window-ms', 500),
    nodeTimeoutMs: num('node-timeout', 40) * 1000,
    limits: { memory: num('user-memory-mb', 16384), apps: num('user-apps', 50) },
    appUids: values['app-uids'] === undefined
      ? DEFAULT_APP_UIDS
      : parseUidRange(values['app-uids'] as string, sources['app-uids'] === 'env' ? `${ENV_PREFIX}_APP_UIDS` : '--app-uids'),
    serviceTimeoutMs: num('service-timeout', 60) * 1000,
    admin: email ? { email: email.toLowerCase(), password: password! } : undefined,
    metrics: metricsOptions(parsed, ENV_PREFIX),
  };
}
