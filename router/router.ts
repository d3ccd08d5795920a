import * as os from 'node:os';
import type { Bus } from '../bus/connection';
import type { ComponentConfig } from '../bus/config';
import type { Logger } from '../bus/log';
import { RouteSubscriber } from './mbus/subscriber';
import { DEFAULT_LB, DEFAULT_MAX_CONNS_PER_BACKEND, type RouterOptions } from './options';
import { Proxy, type ProxySettings } from './proxy/proxy';
import { UpstreamClient } from './proxy/upstream';
import { Registry } from './registry/registry';
import { parseLbAlgorithm } from './route/pool';
import { StatusServer } from './varz/status_server';
import { RouterStats } from './varz/varz';

type UwsModule = typeof import('uWebSockets.js');
type ListenSocket = import('uWebSockets.js').us_listen_socket;

/** Settings the config store may change while the router runs (unless a flag fixed them). */
const LIVE_SETTINGS = ['lb_algorithm', 'max_conns_per_backend'] as const;

/**
 * One router: routing table, bus subscriber, proxy on uWebSockets.js and the
 * status port, wired together. Constructed by main.ts and directly by tests.
 */
export class Router {
  readonly stats = new RouterStats();
  readonly registry: Registry;
  readonly upstream: UpstreamClient;
  readonly settings: ProxySettings;
  readonly subscriber: RouteSubscriber;
  private readonly proxy: Proxy;
  private readonly status: StatusServer;
  private listenSocket: ListenSocket | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private serving = false;
  private readonly startedAt = new Date();
  port = 0;
  statusPort = 0;

  constructor(
    private readonly options: RouterOptions,
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly config?: ComponentConfig,
  ) {
    this.upstream = new UpstreamClient({
      connectTimeoutMs: options.connectTimeoutMs,
      responseTimeoutMs: options.backendTimeoutMs,
      idleTimeoutMs: options.backendIdleTimeoutMs,
      safeReuseMs: Math.min(1000, options.backendIdleTimeoutMs / 2),
      maxResponseHeaderBytes: 80 * 1024,
    });
    this.registry = new Registry({
      defaultStaleThresholdMs: options.staleThresholdMs,
      emptyPoolTtlMs: options.staleThresholdMs,
      onBackendRemoved: (backend) => this.upstream.closeIdle(backend),
    });
    this.settings = {
      lbAlgorithm: options.lb ?? DEFAULT_LB,
      maxAttempts: 3,
      coolDownMs: 30_000,
      maxConnsPerBackend: options.maxConnsPerBackend ?? DEFAULT_MAX_CONNS_PER_BACKEND,
      maxHeaderBytes: options.maxHeaderBytes,
      sessionCookies: options.sessionCookies,
      sanitizeForwarded: options.sanitizeForwarded,
    };
    this.proxy = new Proxy(this.registry, this.upstream, this.stats, this.settings, log);
    this.subscriber = new RouteSubscriber(
      bus,
      this.registry,
      this.stats,
      {
        minimumRegisterIntervalSeconds: 20,
        pruneThresholdSeconds: Math.round(options.staleThresholdMs / 1000),
        hosts: [localAddress()],
      },
      log,
    );
    this.status = new StatusServer(
      { isServing: () => this.serving, varz: () => this.varz(), routes: () => this.registry.snapshot(Date.now()) },
      options.statusUser,
      options.statusPassword,
    );
  }

  /** Subscribes, opens the status port, waits start-delay for routes, then listens for app traffic. */
  async start(): Promise<void> {
    this.applyStoreSettings();
    this.subscriber.start();
    this.statusPort = await this.status.listen(this.options.statusPort, this.options.statusHost);
    this.pruneTimer = setInterval(() => this.prune(), this.options.pruneIntervalMs);
    this.pruneTimer.unref();
    if (this.options.startDelayMs > 0) await new Promise((r) => setTimeout(r, this.options.startDelayMs));
    this.port = await this.listen();
    this.serving = true;
  }

  async stop(): Promise<void> {
    this.serving = false;
    if (this.pruneTimer !== null) clearInterval(this.pruneTimer);
    if (this.listenSocket !== null) {
      loadUws().us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
    this.subscriber.stop();
    this.upstream.shutdown();
    await this.status.close();
  }

  /** Removes stale endpoints, unless the bus is down: then nobody could have refreshed them. */
  prune(): void {
    if (!this.bus.isConnected()) return;
    const pruned = this.registry.prune(Date.now());
    if (pruned > 0) this.log.info('pruned stale endpoints', { count: pruned });
  }

  varz(): object {
    const s = this.stats;
    const mem = process.memoryUsage();
    const now = Date.now();
    return {
      type: 'Router',
      uuid: this.subscriber.id,
      host: `${localAddress()}:${this.statusPort}`,
      start: this.startedAt.toISOString(),
      uptime_seconds: Math.round(process.uptime()),
      num_cores: os.cpus().length,
      mem_kb: Math.round(mem.rss / 1024),
      heap_used_kb: Math.round(mem.heapUsed / 1024),
      requests: s.requests,
      responses_2xx: s.responses2xx,
      responses_3xx: s.responses3xx,
      responses_4xx: s.responses4xx,
      responses_5xx: s.responses5xx,
      responses_xxx: s.responsesOther,
      bad_requests: s.badRequests,
      bad_gateways: s.badGateways,
      client_aborts: s.clientAborts,
      retries: s.retries,
      connection_limit_rejections: s.connectionLimitRejections,
      latency_ms: {
        count: s.latency.count,
        mean: s.latency.count === 0 ? 0 : round3(s.latency.sumMs / s.latency.count),
        p50: round3(s.latency.percentile(50)),
        p75: round3(s.latency.percentile(75)),
        p90: round3(s.latency.percentile(90)),
        p95: round3(s.latency.percentile(95)),
        p99: round3(s.latency.percentile(99)),
        max: round3(s.latency.maxMs),
      },
      urls: this.registry.routeCount,
      droplets: this.registry.endpointCount,
      registry_messages: { register: s.registerMessages, unregister: s.unregisterMessages },
      rejected_messages: { total: this.subscriber.rejections.total, by_subject: this.subscriber.rejections.bySubject() },
      slow_consumer_events: s.slowConsumerEvents,
      ms_since_last_registry_update: this.registry.lastUpdateAt === 0 ? null : now - this.registry.lastUpdateAt,
      upstream_connections: this.upstream.openConnections,
      nats_connected: this.bus.isConnected(),
      lb_algorithm: this.settings.lbAlgorithm,
      max_conns_per_backend: this.settings.maxConnsPerBackend,
    };
  }

  private listen(): Promise<number> {
    const uws = loadUws();
    const app = uws.App();
    app.any('/*', this.proxy.handle);
    return new Promise((resolve, reject) => {
      app.listen(this.options.host, this.options.port, (token) => {
        if (!token) {
          reject(new Error(`cannot listen on ${this.options.host}:${this.options.port}: address in use or not permitted`));
          return;
        }
        this.listenSocket = token;
        resolve(uws.us_socket_local_port(token));
      });
    });
  }

  private applyStoreSettings(): void {
    const config = this.config;
    if (config === undefined) return;
    for (const setting of LIVE_SETTINGS) this.applySetting(setting, config.get(setting));
    config.onChange((setting, value) => this.applySetting(setting, value));
  }

  private applySetting(setting: string, value: unknown): void {
    if (setting === 'lb_algorithm' && this.options.lb === undefined) {
      const algorithm = value === undefined ? DEFAULT_LB : parseLbAlgorithm(value);
      if (algorithm === undefined) {
        this.log.warn('ignoring invalid router.lb_algorithm', { value: String(value) });
        return;
      }
      if (algorithm !== this.settings.lbAlgorithm) this.log.info('load balancing changed', { lb: algorithm });
      this.settings.lbAlgorithm = algorithm;
    } else if (setting === 'max_conns_per_backend' && this.options.maxConnsPerBackend === undefined) {
      const limit = value === undefined ? DEFAULT_MAX_CONNS_PER_BACKEND : value;
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
        this.log.warn('ignoring invalid router.max_conns_per_backend', { value: String(value) });
        return;
      }
      this.settings.maxConnsPerBackend = limit;
    }
  }
}

let uwsModule: UwsModule | undefined;
function loadUws(): UwsModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  uwsModule ??= require('uWebSockets.js') as UwsModule;
  return uwsModule;
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function localAddress(): string {
  for (const addresses of Object.values(os.networkInterfaces()))
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}
