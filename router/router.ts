import * as os from 'node:os';
import type { Bus } from '../bus/connection';
import { ComponentAnnouncer } from '../bus/component';
import type { ComponentConfig } from '../bus/config';
import type { Logger } from '../bus/log';
import { checkSetting } from '../bus/settings';
import { Subjects } from '../bus/subjects';
import { AccessLog } from './accesslog/access_log';
import { Drainer, type DrainResult } from './drain';
import { RouteSubscriber } from './mbus/subscriber';
import { DEFAULT_LB, DEFAULT_MAX_CONNS_PER_BACKEND, type RouterOptions } from './options';
import { Proxy, type ProxySettings } from './proxy/proxy';
import { UpstreamClient } from './proxy/upstream';
import { WebSocketProxy, WebSocketStats, webSocketVarz, type WebSocketFigures, type WebSocketRecord } from './proxy/websocket';
import { Registry } from './registry/registry';
import { parseLbAlgorithm } from './route/pool';
import { AppStats, appStatsMessage } from './varz/app_stats';
import { renderRouterMetrics } from './varz/metrics';
import { StatusServer } from './varz/status_server';
import { RouterStats, type StatsSnapshot } from './varz/varz';

type UwsModule = typeof import('uWebSockets.js');
type ListenSocket = import('uWebSockets.js').us_listen_socket;
/** uWS 20.30 has App.close() (closes every socket of the app, listen socket included); its typings lack it. */
type UwsApp = import('uWebSockets.js').TemplatedApp & { close?(): void };

/**
 * What drain, /varz, /metrics and the access log need of the WebSocket proxy
 * (router/proxy/websocket.ts's WebSocketProxy satisfies it): assign it to
 * `Router.websockets`.
 */
export interface WebSocketControl {
  /** WebSockets open now. */
  readonly openCount: number;
  /** Sends every open WebSocket a close frame (drain: 1001 Going Away). */
  closeAll(code: number, reason: string): unknown;
  readonly stats: WebSocketStats;
  /** Called once per upgrade request (at close, or when refused); the router points it at the access log. */
  onRecord: ((record: WebSocketRecord) => void) | null;
}

/**
 * What a worker thread of `--threads` posts to the first thread about once a
 * second, which adds it into /varz and /metrics (the first thread alone runs
 * the status port).
 */
export interface ThreadFigures {
  thread: number;
  stats: StatsSnapshot;
  upstreamConnections: number;
  rejectedMessages: number;
  websockets: WebSocketFigures | null;
  accessLog: { lines: number; dropped: number; writeErrors: number } | null;
  heapUsedBytes: number;
}

/** How often the first thread publishes `router.app_stats` (the bus contract: consumers expect 2 s). */
export const APP_STATS_INTERVAL_MS = 2000;

/**
 * Pipelined requests still waiting behind a response this old are sent again
 * on connections of their own. Far above the app-side response time of the
 * requests pipelining is for (well under a millisecond for small responses
 * here), so it only fires on responses that are slow by any measure; the
 * sweep runs every 250 ms, so it fires within 500-750 ms.
 */
const PIPELINE_STALL_MS = 500;
/** After a stall, the app instance is served unpipelined this long (as long as the failure cool-down). */
const PIPELINE_COOL_DOWN_MS = 30_000;

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
  private app: UwsApp | null = null;
  /** Set by start() when --access-log is given; the WebSocket module logs through `accessLog.websocket()`. */
  accessLog: AccessLog | null = null;
  private webSocketControl: WebSocketControl | null = null;
  readonly drainer: Drainer;
  private readonly component: ComponentAnnouncer;
  private pruneTimer: NodeJS.Timeout | null = null;
  private appStatsTimer: NodeJS.Timeout | null = null;
  private serving = false;
  private readonly startedAt = new Date();
  port = 0;
  statusPort = 0;
  /** The other threads' latest figures (`--threads`); set by main.ts on the first thread. */
  peerFigures: () => readonly ThreadFigures[] = () => [];
  /** Threads serving the app port (`--threads`), this one included. */
  threadCount = 1;
  /** 0: the first thread (status port, component announce); >0: a worker thread of `--threads`. */
  readonly thread: number;

  constructor(
    private readonly options: RouterOptions,
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly config?: ComponentConfig,
    thread = 0,
  ) {
    this.thread = thread;
    this.upstream = new UpstreamClient(
      {
        connectTimeoutMs: options.connectTimeoutMs,
        responseTimeoutMs: options.backendTimeoutMs,
        idleTimeoutMs: options.backendIdleTimeoutMs,
        safeReuseMs: Math.min(1000, options.backendIdleTimeoutMs / 2),
        maxResponseHeaderBytes: 80 * 1024,
        pipelineDepth: options.backendPipelineDepth,
        pipelineGuardMs: options.backendPipelineGuardMs,
        pipelineStallMs: PIPELINE_STALL_MS,
        pipelineCoolDownMs: PIPELINE_COOL_DOWN_MS,
      },
      this.stats,
      (backend, reason) => log.info('not pipelining requests to this app instance', { backend: backend.key, reason }),
    );
    this.registry = new Registry({
      defaultStaleThresholdMs: options.staleThresholdMs,
      emptyPoolTtlMs: options.emptyPoolTimeoutMs,
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
      draining: false,
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
      {
        isServing: () => this.serving,
        varz: () => this.varz(),
        routes: () => this.registry.snapshot(Date.now()),
        metrics: () => this.metrics(),
      },
      options.statusUser,
      options.statusPassword,
    );
    this.drainer = new Drainer(
      {
        markUnhealthy: () => {
          this.serving = false;
        },
        stopAccepting: () => this.stopAccepting(),
        inFlight: () => this.stats.inFlight,
        openWebSockets: () => this.webSocketControl?.openCount ?? 0,
        closeWebSockets: (code, reason) => this.webSocketControl?.closeAll(code, reason),
        closeConnections: () => this.closeConnections(),
      },
      log,
    );
    this.component = new ComponentAnnouncer(
      bus,
      {
        type: 'Router',
        index: 0,
        uuid: this.subscriber.id,
        host: () => `${this.statusAddress()}:${this.statusPort}`,
        node: options.node,
        credentials: [options.statusUser, options.statusPassword],
        // Its /metrics is on the status port, behind the same credentials.
        metrics: () => (this.statusPort === 0 ? undefined : `${this.statusAddress()}:${this.statusPort}`),
        startedAt: this.startedAt,
      },
      log,
    );
  }

  /**
   * Subscribes, opens the status port, waits start-delay for routes, then
   * listens for app traffic. `beforeListen` runs once subscribed (a worker
   * thread loads the first thread's table there).
   */
  async start(beforeListen?: () => Promise<void>): Promise<void> {
    if (this.options.accessLog !== undefined) {
      this.accessLog = await AccessLog.open({
        path: this.options.accessLog,
        maxBufferBytes: this.options.accessLogBufferBytes,
        sanitizeForwarded: this.options.sanitizeForwarded,
        log: this.log,
      });
    }
    this.applyStoreSettings();
    this.subscriber.start();
    if (this.thread === 0) {
      this.statusPort = await this.status.listen(this.options.statusPort, this.options.statusHost);
      this.component.start();
      this.appStatsTimer = setInterval(() => this.publishAppStats(), this.options.appStatsIntervalMs ?? APP_STATS_INTERVAL_MS);
      this.appStatsTimer.unref();
    }
    this.pruneTimer = setInterval(() => this.prune(), this.options.pruneIntervalMs);
    this.pruneTimer.unref();
    if (this.options.startDelayMs > 0) await new Promise((r) => setTimeout(r, this.options.startDelayMs));
    if (beforeListen !== undefined) await beforeListen();
    this.port = await this.listen();
    this.serving = true;
  }

  /**
   * SIGUSR1 (waitMs = --drain-wait) and SIGTERM (waitMs = 0): health 503, stop
   * accepting, let in-flight requests finish (at most --drain-timeout), 1001 to
   * WebSockets, close what is left. Resolves when no client connection is left;
   * stop() then releases the rest. See drain.ts.
   */
  drain(waitMs: number, timeoutMs = this.options.drainTimeoutMs): Promise<DrainResult> {
    return this.drainer.drain(waitMs, timeoutMs);
  }

  /** The WebSocket proxy: drained with close code 1001, counted in /varz and /metrics, logged at close. */
  get websockets(): WebSocketControl | null {
    return this.webSocketControl;
  }

  set websockets(control: WebSocketControl | null) {
    this.webSocketControl = control;
    // Looked up at each close: the access log is opened in start(), maybe after this.
    if (control !== null) control.onRecord = (record) => this.accessLog?.websocket(record);
  }

  /** SIGHUP: the access log file is reopened by its path (logrotate). */
  reopenAccessLog(): boolean {
    if (this.accessLog === null) return false;
    this.accessLog.reopen();
    return true;
  }

  /** Closes everything at once (after a drain there is nothing left to cut). */
  async stop(): Promise<void> {
    this.serving = false;
    if (this.pruneTimer !== null) clearInterval(this.pruneTimer);
    if (this.appStatsTimer !== null) clearInterval(this.appStatsTimer);
    this.stopAccepting();
    this.closeConnections();
    this.component.stop();
    this.subscriber.stop();
    this.upstream.shutdown();
    await this.status.close();
    await this.accessLog?.close();
  }

  private stopAccepting(): void {
    this.serving = false;
    this.settings.draining = true;
    if (this.listenSocket !== null) {
      loadUws().us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
  }

  /** Every client connection of the app port: idle keep-alive ones, and whatever a drain timeout left. */
  private closeConnections(): void {
    const app = this.app;
    this.app = null;
    app?.close?.();
  }

  /** The address announced for the status port: --status-host when it names one, else this machine's. */
  private statusAddress(): string {
    const host = this.options.statusHost;
    return host === '0.0.0.0' || host === '::' || host === '' ? localAddress() : host;
  }

  /** Removes stale endpoints, unless the bus is down: then nobody could have refreshed them. */
  prune(): void {
    if (!this.bus.isConnected()) return;
    const pruned = this.registry.prune(Date.now());
    if (pruned > 0) this.log.info('pruned stale endpoints', { count: pruned });
  }

  /**
   * `router.app_stats`: every thread's per-app counters, summed (the other
   * threads' are at most a second old). Published even with no traffic, so
   * consumers see the router alive and its restarts.
   */
  appStatsMessage(now = Date.now()): ReturnType<typeof appStatsMessage> {
    const apps = new AppStats();
    apps.add(this.stats.apps.snapshot());
    for (const peer of this.peerFigures()) apps.add(peer.stats.apps);
    return appStatsMessage(apps, { id: this.subscriber.id, host: `${this.statusAddress()}:${this.statusPort}`, startedMs: this.startedAt.getTime() }, now);
  }

  private publishAppStats(): void {
    if (!this.bus.isConnected()) return;
    try {
      this.bus.publish(Subjects.routerAppStats, this.appStatsMessage());
    } catch (error) {
      this.log.warn('could not publish router.app_stats', { error: (error as Error).message });
    }
  }

  /** This thread's figures, for the first thread to add up. */
  figures(): ThreadFigures {
    const ws = this.webSocketControl?.stats ?? null;
    const accessLog = this.accessLog;
    return {
      thread: this.thread,
      stats: this.stats.snapshot(),
      upstreamConnections: this.upstream.openConnections,
      rejectedMessages: this.subscriber.rejections.total,
      websockets: ws === null ? null : ws.figures(),
      accessLog: accessLog === null ? null : { lines: accessLog.linesWritten, dropped: accessLog.linesDropped, writeErrors: accessLog.writeErrors },
      heapUsedBytes: process.memoryUsage().heapUsed,
    };
  }

  /** This thread's figures plus those of the other threads: what /varz and /metrics show. */
  private totals(): ThreadFigures & { counters: RouterStats; websocketTotals: WebSocketStats | null } {
    const own = this.figures();
    const counters = new RouterStats();
    counters.add(own.stats);
    const websocketTotals = own.websockets === null ? null : new WebSocketStats();
    websocketTotals?.add(own.websockets!);
    for (const peer of this.peerFigures()) {
      counters.add(peer.stats);
      own.upstreamConnections += peer.upstreamConnections;
      own.rejectedMessages += peer.rejectedMessages;
      own.heapUsedBytes += peer.heapUsedBytes;
      if (websocketTotals !== null && peer.websockets !== null) websocketTotals.add(peer.websockets);
      if (own.accessLog !== null && peer.accessLog !== null) {
        own.accessLog.lines += peer.accessLog.lines;
        own.accessLog.dropped += peer.accessLog.dropped;
        own.accessLog.writeErrors += peer.accessLog.writeErrors;
      }
    }
    return { ...own, counters, websocketTotals };
  }

  varz(): object {
    const totals = this.totals();
    const s = totals.counters;
    const mem = process.memoryUsage();
    const now = Date.now();
    return {
      type: 'Router',
      uuid: this.subscriber.id,
      host: `${this.statusAddress()}:${this.statusPort}`,
      start: this.startedAt.toISOString(),
      uptime_seconds: Math.round(process.uptime()),
      num_cores: os.cpus().length,
      threads: this.threadCount,
      requests_per_thread: [this.stats.requests, ...this.peerFigures().map((f) => f.stats.requests)],
      mem_kb: Math.round(mem.rss / 1024),
      heap_used_kb: Math.round(totals.heapUsedBytes / 1024),
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
      pipelining: {
        depth: this.options.backendPipelineDepth,
        guard_ms: this.options.backendPipelineGuardMs,
        pipelined_requests: s.pipelinedRequests,
        replays: s.pipelineReplays,
        refusals: s.pipelineRefusals,
        stalls: s.pipelineStalls,
      },
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
      // Every thread receives every route message: the first thread's counts are the router's.
      registry_messages: { register: this.stats.registerMessages, unregister: this.stats.unregisterMessages, pending: this.subscriber.backlog },
      rejected_messages: { total: totals.rejectedMessages, by_subject: this.subscriber.rejections.bySubject() },
      slow_consumer_events: s.slowConsumerEvents,
      ms_since_last_registry_update: this.registry.lastUpdateAt === 0 ? null : now - this.registry.lastUpdateAt,
      upstream_connections: totals.upstreamConnections,
      nats_connected: this.bus.isConnected(),
      nats_permission_violations: this.bus.permissionViolations,
      lb_algorithm: this.settings.lbAlgorithm,
      max_conns_per_backend: this.settings.maxConnsPerBackend,
      in_flight_requests: s.inFlight,
      draining: this.drainer.draining,
      top10_app_requests: s.topApps(10).map((a) => ({ application_id: a.appId, requests: a.requests })),
      websockets: totals.websocketTotals === null ? null : webSocketVarz(totals.websocketTotals),
      access_log:
        totals.accessLog === null
          ? null
          : { lines: totals.accessLog.lines, dropped: totals.accessLog.dropped, write_errors: totals.accessLog.writeErrors },
    };
  }

  /** /metrics: the /varz figures in Prometheus text format. */
  metrics(): string {
    const totals = this.totals();
    const s = totals.counters;
    const mem = process.memoryUsage();
    const accessLog = totals.accessLog;
    return renderRouterMetrics({
      requests: s.requests,
      inFlight: s.inFlight,
      responses: { '2xx': s.responses2xx, '3xx': s.responses3xx, '4xx': s.responses4xx, '5xx': s.responses5xx, other: s.responsesOther },
      badRequests: s.badRequests,
      badGateways: s.badGateways,
      clientAborts: s.clientAborts,
      retries: s.retries,
      connectionLimitRejections: s.connectionLimitRejections,
      pipeline: { requests: s.pipelinedRequests, replays: s.pipelineReplays, refusals: s.pipelineRefusals, stalls: s.pipelineStalls },
      latency: {
        quantiles: [0.5, 0.75, 0.9, 0.95, 0.99].map((q): [number, number] => [q, s.latency.percentile(q * 100) / 1000]),
        sum: s.latency.sumMs / 1000,
        count: s.latency.count,
      },
      topApps: s.topApps(10),
      routes: this.registry.routeCount,
      endpoints: this.registry.endpointCount,
      registerMessages: this.stats.registerMessages,
      unregisterMessages: this.stats.unregisterMessages,
      rejectedMessages: totals.rejectedMessages,
      slowConsumerEvents: s.slowConsumerEvents,
      msSinceLastRegistryUpdate: this.registry.lastUpdateAt === 0 ? null : Date.now() - this.registry.lastUpdateAt,
      upstreamConnections: totals.upstreamConnections,
      natsConnected: this.bus.isConnected(),
      natsPermissionViolations: this.bus.permissionViolations,
      draining: this.drainer.draining,
      websockets: totals.websocketTotals,
      accessLog,
      startTimeSeconds: this.startedAt.getTime() / 1000,
      residentMemoryBytes: mem.rss,
      heapUsedBytes: totals.heapUsedBytes,
    });
  }

  private listen(): Promise<number> {
    const uws = loadUws();
    const app = uws.App();
    this.app = app;
    this.proxy.accessLog = this.accessLog;
    app.any('/*', this.accessLog === null ? this.proxy.handle : this.accessLog.wrap(this.proxy.handle));
    // --- WebSockets (router/proxy/websocket.ts) ---
    const websockets = new WebSocketProxy(
      this.registry,
      this.settings,
      this.stats,
      {
        maxPayloadBytes: this.options.wsMaxPayloadBytes,
        idleTimeoutMs: this.options.wsIdleTimeoutMs,
        connectTimeoutMs: this.options.connectTimeoutMs,
        handshakeTimeoutMs: this.options.backendTimeoutMs,
      },
      this.log,
    );
    this.websockets = websockets;
    app.ws('/*', websockets.behavior());
    // --- end WebSockets ---
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
      const checked = value === undefined ? { ok: true as const, value: DEFAULT_LB } : checkSetting('router.lb_algorithm', value);
      if (!checked.ok) {
        this.log.warn('ignoring invalid router.lb_algorithm', { error: checked.error });
        return;
      }
      const algorithm = parseLbAlgorithm(checked.value)!;
      if (algorithm !== this.settings.lbAlgorithm) this.log.info('load balancing changed', { lb: algorithm });
      this.settings.lbAlgorithm = algorithm;
    } else if (setting === 'max_conns_per_backend' && this.options.maxConnsPerBackend === undefined) {
      const checked = value === undefined ? { ok: true as const, value: DEFAULT_MAX_CONNS_PER_BACKEND } : checkSetting('router.max_conns_per_backend', value);
      if (!checked.ok) {
        this.log.warn('ignoring invalid router.max_conns_per_backend', { error: checked.error });
        return;
      }
      if (checked.value !== this.settings.maxConnsPerBackend) this.log.info('connection limit per backend changed', { max_conns_per_backend: checked.value });
      this.settings.maxConnsPerBackend = checked.value as number;
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
