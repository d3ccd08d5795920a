// A role's own Prometheus metrics on a port of its own (`--metrics-port`),
// the way Cloud Foundry v1 components served /varz: behind HTTP basic auth,
// with the address and credentials in the role's `vcap.component.announce`
// so a collector on the bus finds them, and Prometheus scrapes with
// `basic_auth`. Basic auth rather than an open port on 127.0.0.1: the
// figures name apps and their usage, and Prometheus usually runs on another
// host. The password comes from the environment only (a command line is
// readable by every process). Off (port 0) unless given: `skiff up` gives
// every role one. Metric names: control/METRICS.md, dea/METRICS.md.

import { timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { reachableAt } from './component';
import { envName, UsageError, type FlagSpec, type ParsedFlags } from './flags';

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** The flags every role takes for its metrics port (the router has /metrics on its status port instead). */
export const METRICS_FLAGS: readonly FlagSpec[] = [
  { name: 'metrics-port', kind: 'number', min: 0, max: 65535, help: 'port for GET /metrics (Prometheus, basic auth); 0: none', defaultText: '0' },
  { name: 'metrics-host', kind: 'string', help: 'address the metrics port listens on', defaultText: '0.0.0.0' },
  { name: 'metrics-user', kind: 'string', help: 'basic-auth user for /metrics', defaultText: 'metrics' },
  { name: 'metrics-password', kind: 'string', secret: true, help: 'basic-auth password for /metrics, at least 12 characters; from the environment only' },
];

export interface MetricsOptions {
  /** 0: no metrics port. */
  port: number;
  host: string;
  user: string;
  password: string;
}

/** The metrics flags of a role whose flags were parsed with METRICS_FLAGS; a UsageError for a missing or misplaced password. */
export function metricsOptions(parsed: ParsedFlags, envPrefix: string): MetricsOptions {
  const { values, sources } = parsed;
  const port = (values['metrics-port'] as number | undefined) ?? 0;
  const passwordEnv = envName(envPrefix, 'metrics-password');
  if (sources['metrics-password'] === 'flag') {
    throw new UsageError(`give the metrics password in ${passwordEnv}, not --metrics-password: a command line is readable by every process`);
  }
  if (!Number.isInteger(port)) throw new UsageError(`--metrics-port must be a whole number, got ${port}`);
  const password = (values['metrics-password'] as string | undefined) ?? '';
  if (port !== 0 && password.length < 12) {
    throw new UsageError(`--metrics-port needs ${passwordEnv} (basic auth of /metrics, at least 12 characters)`);
  }
  const user = (values['metrics-user'] as string | undefined) ?? 'metrics';
  if (user.includes(':')) throw new UsageError(`--metrics-user must not contain ':', got ${JSON.stringify(user)}`);
  return { port, host: (values['metrics-host'] as string | undefined) ?? '0.0.0.0', user, password };
}

/** Once read, the password leaves the environment, so nothing the role spawns inherits it. */
export function forgetMetricsPassword(envPrefix: string, env: NodeJS.ProcessEnv = process.env): void {
  delete env[envName(envPrefix, 'metrics-password')];
}

/** A registry with prom-client's process_* and nodejs_* figures, for a role's process (once per process). */
export function processRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * GET (or HEAD) /metrics with basic auth; anything else 404 or 405. The
 * registries are merged at each scrape, so a role may hand over several
 * (its own, the process's).
 */
export class MetricsServer {
  private readonly server: http.Server;
  private readonly expectedAuth: Buffer;
  private address: { host: string; port: number } | undefined;

  constructor(
    private readonly registries: readonly Registry[],
    private readonly credentials: { user: string; password: string },
  ) {
    this.expectedAuth = Buffer.from(`Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64')}`);
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  /** Listens; resolves with the port (useful with 0 in tests), rejects with one clear line when the port is taken. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) =>
        reject(new Error(error.code === 'EADDRINUSE' ? `metrics port ${host}:${port} is taken` : `cannot listen on metrics port ${host}:${port}: ${error.message}`));
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const bound = (this.server.address() as AddressInfo).port;
        this.address = { host, port: bound };
        resolve(bound);
      });
    });
  }

  /** "host:port" others scrape (a wildcard address becomes the host name); undefined before listen. */
  reachableAt(): string | undefined {
    return this.address === undefined ? undefined : reachableAt(this.address.host, this.address.port);
  }

  /** For vcap.component.announce (CF v1 announced each component's status credentials the same way). */
  announced(): { metrics: () => string | undefined; credentials: [string, string] } {
    return { metrics: () => this.reachableAt(), credentials: [this.credentials.user, this.credentials.password] };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') return send(res, 404, 'text/plain', 'not found: only /metrics here\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n', { Allow: 'GET, HEAD' });
    if (!this.authorized(req.headers.authorization)) {
      return send(res, 401, 'text/plain', 'unauthorized\n', { 'WWW-Authenticate': 'Basic realm="skiff-metrics"' });
    }
    try {
      const registry = this.registries.length === 1 ? this.registries[0]! : Registry.merge([...this.registries]);
      send(res, 200, METRICS_CONTENT_TYPE, await registry.metrics());
    } catch (error) {
      send(res, 500, 'text/plain', `cannot gather the metrics: ${(error as Error).message}\n`);
    }
  }

  private authorized(header: string | undefined): boolean {
    if (header === undefined) return false;
    const given = Buffer.from(header);
    return given.length === this.expectedAuth.length && timingSafeEqual(given, this.expectedAuth);
  }
}

/**
 * A role's metrics port as its flags ask: undefined when off; the server
 * listening otherwise. Throws (one line) when it cannot listen: a role
 * asked for metrics should not run blind.
 */
export async function serveMetrics(options: MetricsOptions, registries: readonly Registry[]): Promise<MetricsServer | undefined> {
  if (options.port === 0) return undefined;
  const server = new MetricsServer(registries, options);
  await server.listen(options.port, options.host);
  return server;
}

function send(res: http.ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...extra });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
