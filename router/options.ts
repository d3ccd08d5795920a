import { NODE_FLAG, nodeName } from '../bus/component';
import { parseFlags, UsageError, type FlagSpec } from '../bus/flags';
import { knownSetting } from '../bus/settings';
import { NATS_FLAGS, natsTarget, type NatsAuth } from '../bus/nats-options';
import { DEFAULT_SESSION_COOKIES, parseCookieNames } from './proxy/sticky';
import { LB_ALGORITHMS, type LbAlgorithm } from './route/pool';

export const ENV_PREFIX = 'SKIFF_ROUTER';

/** Measured: benchmarks/NOTES.md (2026-12-06, pipelining). */
export const DEFAULT_PIPELINE_DEPTH = 16;
/**
 * 0: only requests of one event-loop turn share a connection. Joining a
 * connection whose requests went out earlier saves no write (each turn's
 * batch is one write anyway) and only adds waiting; NOTES.md has the
 * measurements.
 */
export const DEFAULT_PIPELINE_GUARD_MS = 0;

export const ROUTER_FLAGS: readonly FlagSpec[] = [
  { name: 'port', kind: 'number', min: 0, max: 65535, help: 'port for app traffic (HTTP and WebSocket)', defaultText: '8080' },
  { name: 'host', kind: 'string', help: 'address to listen on for app traffic', defaultText: '0.0.0.0' },
  { name: 'status-port', kind: 'number', min: 0, max: 65535, help: 'port for /health, /varz, /routes', defaultText: '8081' },
  { name: 'status-host', kind: 'string', help: 'address of the status port', defaultText: '0.0.0.0' },
  ...NATS_FLAGS,
  NODE_FLAG,
  { name: 'status-user', kind: 'string', help: 'basic-auth user for /varz and /routes', defaultText: 'generated' },
  { name: 'status-password', kind: 'string', secret: true, help: 'basic-auth password for /varz and /routes', defaultText: 'generated, logged once' },
  { name: 'access-log', kind: 'string', help: 'file to append one line per request to (reopened on SIGHUP)' },
  { name: 'access-log-buffer-kb', kind: 'number', min: 16, max: 1048576, help: 'access log lines held in memory at most; beyond (disk stalled) lines are dropped and counted', defaultText: '4096' },
  { name: 'drain-wait', kind: 'number', min: 0, max: 86400, help: 'SIGUSR1: seconds health answers 503 before the router stops accepting', defaultText: '20' },
  { name: 'drain-timeout', kind: 'number', min: 0, max: 86400, help: 'seconds in-flight requests get to finish once the router stops accepting (SIGUSR1, SIGTERM)', defaultText: '900' },
  { name: 'lb', kind: 'string', choices: LB_ALGORITHMS, help: 'default load balancing; overrides router.lb_algorithm in the config store', defaultText: 'round-robin' },
  { name: 'start-delay', kind: 'number', min: 0, max: 3600, help: 'seconds to collect routes before listening', defaultText: '1' },
  { name: 'max-conns-per-backend', kind: 'number', min: knownSetting('router.max_conns_per_backend').min, max: knownSetting('router.max_conns_per_backend').max, help: 'concurrent requests per app instance; beyond: 503', defaultText: '500' },
  { name: 'backend-timeout', kind: 'number', min: 0.001, help: 'seconds to wait for an app to start responding (504 after)', defaultText: '900' },
  { name: 'connect-timeout', kind: 'number', min: 0.001, help: 'seconds to wait for a connection to an app', defaultText: '5' },
  { name: 'backend-pipeline-depth', kind: 'number', min: 1, max: 1024, help: 'most GET/HEAD/OPTIONS requests without a body sent on one app connection before their responses (pipelining); 1: none', defaultText: String(DEFAULT_PIPELINE_DEPTH) },
  { name: 'backend-pipeline-guard-ms', kind: 'number', min: 0, max: 60000, help: 'a request may join an app connection whose oldest unanswered request went out less than this long ago; 0: only requests of the same event-loop turn share one', defaultText: String(DEFAULT_PIPELINE_GUARD_MS) },
  { name: 'backend-idle-timeout', kind: 'number', min: 0.001, help: 'seconds a kept-alive app connection may idle (keep below apps\' own)', defaultText: '4' },
  { name: 'droplet-stale-threshold', kind: 'number', min: 0.001, help: 'seconds a registration lives without a refresh, unless the message says', defaultText: '120' },
  { name: 'empty-pool-timeout', kind: 'number', min: 0, max: 86400, help: 'seconds a route whose last instance left answers 503 no_endpoints before it is unknown (404)', defaultText: '5' },
  { name: 'prune-interval', kind: 'number', min: 0.01, help: 'seconds between sweeps for stale endpoints', defaultText: '30' },
  { name: 'sticky-session-cookies', kind: 'string', help: 'comma-separated cookie names that start a sticky session', defaultText: 'JSESSIONID' },
  { name: 'forwarded-headers', kind: 'string', choices: ['trust', 'sanitize'], help: 'trust: extend the client\'s X-Forwarded-For/-Proto; sanitize: replace them (edge routers)', defaultText: 'trust' },
  { name: 'threads', kind: 'number', min: 1, max: 64, help: 'threads serving app traffic, each with its own routing table, all on the one port (SO_REUSEPORT); the status port is served by the first', defaultText: '1' },
  { name: 'max-header-kb', kind: 'number', min: 1, max: 1024, help: 'largest request head accepted (431 beyond)', defaultText: '64' },
  // WebSockets (router/proxy/websocket.ts).
  { name: 'ws-max-payload-mb', kind: 'number', min: 0.001, max: 1024, help: 'largest WebSocket message relayed either way (MiB); a bigger one closes the connection', defaultText: '16' },
  { name: 'ws-idle-timeout', kind: 'number', min: 0, help: 'seconds a WebSocket may pass without a message either way before the router closes it (1001); 0: never', defaultText: '1200' },
];

export interface RouterOptions {
  port: number;
  host: string;
  statusPort: number;
  statusHost: string;
  nats: string;
  natsAuth: NatsAuth | undefined;
  /** The node this router runs on (`skiff nodes`). */
  node: string;
  statusUser: string;
  statusPassword: string;
  statusCredentialsGenerated: boolean;
  accessLog: string | undefined;
  accessLogBufferBytes: number;
  /** SIGUSR1: health 503 this long before the listen socket closes (gorouter's drain_wait). */
  drainWaitMs: number;
  /** Once the listen socket is closed: longest wait for in-flight requests (gorouter's drain_timeout). */
  drainTimeoutMs: number;
  /** Undefined unless given by flag or environment: then the config store decides. */
  lb: LbAlgorithm | undefined;
  startDelayMs: number;
  maxConnsPerBackend: number | undefined;
  backendTimeoutMs: number;
  connectTimeoutMs: number;
  backendIdleTimeoutMs: number;
  /** Most requests outstanding on one app connection (1: no pipelining). */
  backendPipelineDepth: number;
  /** A connection owing a response older than this takes no further pipelined request. */
  backendPipelineGuardMs: number;
  staleThresholdMs: number;
  /** A route left without endpoints answers 503 this long, then 404 (an app stopped, not restarting). */
  emptyPoolTimeoutMs: number;
  pruneIntervalMs: number;
  maxHeaderBytes: number;
  /** Largest WebSocket message relayed, either way. */
  wsMaxPayloadBytes: number;
  /** WebSockets silent this long either way are closed; 0: never (Stackato's router2g: 1200 s). */
  wsIdleTimeoutMs: number;
  sessionCookies: string[];
  sanitizeForwarded: boolean;
  threads: number;
  /** router.app_stats period; 2 s (the bus contract) unless a test sets it. */
  appStatsIntervalMs?: number;
}

export const DEFAULT_LB = knownSetting('router.lb_algorithm').default as LbAlgorithm;
export const DEFAULT_MAX_CONNS_PER_BACKEND = knownSetting('router.max_conns_per_backend').default as number;

export function parseRouterOptions(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  generateSecret: () => string,
): RouterOptions & { help: boolean } {
  const parsed = parseFlags(argv, ROUTER_FLAGS, ENV_PREFIX, env);
  const { values, positionals } = parsed;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const num = (name: string, fallback: number): number => (values[name] as number | undefined) ?? fallback;
  const str = (name: string, fallback: string): string => (values[name] as string | undefined) ?? fallback;
  const user = values['status-user'] as string | undefined;
  const password = values['status-password'] as string | undefined;
  return {
    help: values.help === true,
    port: num('port', 8080),
    host: str('host', '0.0.0.0'),
    statusPort: num('status-port', 8081),
    statusHost: str('status-host', '0.0.0.0'),
    ...natsTarget(parsed, env),
    node: nodeName(values.node, parsed.sources.node === 'env' ? 'SKIFF_NODE' : '--node'),
    statusUser: user ?? 'router-status',
    statusPassword: password ?? generateSecret(),
    statusCredentialsGenerated: password === undefined,
    accessLog: values['access-log'] as string | undefined,
    accessLogBufferBytes: num('access-log-buffer-kb', 4096) * 1024,
    drainWaitMs: num('drain-wait', 20) * 1000,
    drainTimeoutMs: num('drain-timeout', 900) * 1000,
    lb: values.lb as LbAlgorithm | undefined,
    startDelayMs: num('start-delay', 1) * 1000,
    maxConnsPerBackend: values['max-conns-per-backend'] as number | undefined,
    backendTimeoutMs: num('backend-timeout', 900) * 1000,
    connectTimeoutMs: num('connect-timeout', 5) * 1000,
    backendIdleTimeoutMs: num('backend-idle-timeout', 4) * 1000,
    backendPipelineDepth: wholeNumber('backend-pipeline-depth', num('backend-pipeline-depth', DEFAULT_PIPELINE_DEPTH)),
    backendPipelineGuardMs: num('backend-pipeline-guard-ms', DEFAULT_PIPELINE_GUARD_MS),
    staleThresholdMs: num('droplet-stale-threshold', 120) * 1000,
    emptyPoolTimeoutMs: num('empty-pool-timeout', 5) * 1000,
    pruneIntervalMs: num('prune-interval', 30) * 1000,
    maxHeaderBytes: num('max-header-kb', 64) * 1024,
    wsMaxPayloadBytes: Math.round(num('ws-max-payload-mb', 16) * 1024 * 1024),
    wsIdleTimeoutMs: num('ws-idle-timeout', 1200) * 1000,
    sessionCookies: parseCookieNames(str('sticky-session-cookies', DEFAULT_SESSION_COOKIES.join(','))),
    sanitizeForwarded: str('forwarded-headers', 'trust') === 'sanitize',
    threads: wholeNumber('threads', num('threads', 1)),
  };
}

function wholeNumber(flag: string, value: number): number {
  if (!Number.isInteger(value)) throw new UsageError(`--${flag} must be a whole number (got ${value})`);
  return value;
}
