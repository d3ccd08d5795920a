// /metrics: the /varz figures in the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): one HELP
// and one TYPE line per family, then its samples; counters end in `_total`;
// latency is a summary (quantiles, _sum, _count) in seconds.

import type { AppRequestCount } from './varz';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string>;

/** Builds one exposition: families in the order they are added, each family once. */
export class PrometheusText {
  private text = '';
  private readonly families = new Set<string>();

  counter(name: string, help: string, samples: number | Array<[Labels, number]>): this {
    return this.family(name, 'counter', help, samples);
  }

  gauge(name: string, help: string, samples: number | Array<[Labels, number]>): this {
    return this.family(name, 'gauge', help, samples);
  }

  /** quantiles: [quantile (0..1), value] */
  summary(name: string, help: string, quantiles: Array<[number, number]>, sum: number, count: number): this {
    this.header(name, 'summary', help);
    for (const [q, value] of quantiles) this.sample(name, { quantile: String(q) }, value);
    this.sample(`${name}_sum`, {}, sum);
    this.sample(`${name}_count`, {}, count);
    return this;
  }

  toString(): string {
    return this.text;
  }

  private family(name: string, type: string, help: string, samples: number | Array<[Labels, number]>): this {
    this.header(name, type, help);
    if (typeof samples === 'number') this.sample(name, {}, samples);
    else for (const [labels, value] of samples) this.sample(name, labels, value);
    return this;
  }

  private header(name: string, type: string, help: string): void {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`invalid metric name ${name}`);
    if (this.families.has(name)) throw new Error(`metric family ${name} added twice`);
    this.families.add(name);
    this.text += `# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${name} ${type}\n`;
  }

  private sample(name: string, labels: Labels, value: number): void {
    let line = name;
    const keys = Object.keys(labels);
    if (keys.length > 0) line += `{${keys.map((k) => `${k}="${escapeLabelValue(labels[k])}"`).join(',')}}`;
    this.text += `${line} ${formatValue(value)}\n`;
  }
}

export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** Everything /metrics shows; router.ts gathers it from the same sources as /varz. */
export interface RouterMetrics {
  requests: number;
  inFlight: number;
  responses: { '2xx': number; '3xx': number; '4xx': number; '5xx': number; other: number };
  badRequests: number;
  badGateways: number;
  clientAborts: number;
  retries: number;
  connectionLimitRejections: number;
  pipeline: { requests: number; replays: number; refusals: number; stalls: number };
  /** Seconds. */
  latency: { quantiles: Array<[number, number]>; sum: number; count: number };
  topApps: AppRequestCount[];
  routes: number;
  endpoints: number;
  registerMessages: number;
  unregisterMessages: number;
  rejectedMessages: number;
  slowConsumerEvents: number;
  /** null until the first registry update. */
  msSinceLastRegistryUpdate: number | null;
  upstreamConnections: number;
  natsConnected: boolean;
  /** Publishes and subscriptions NATS refused (the router's NATS user lacks the permission). */
  natsPermissionViolations: number;
  draining: boolean;
  websockets: {
    open: number;
    total: number;
    bytesIn: number;
    bytesOut: number;
    upgradesFailed: number;
    idleTimeouts: number;
    overflowCloses: number;
  } | null;
  accessLog: { lines: number; dropped: number; writeErrors: number } | null;
  startTimeSeconds: number;
  residentMemoryBytes: number;
  heapUsedBytes: number;
}

export function renderRouterMetrics(m: RouterMetrics): string {
  const p = new PrometheusText();
  const r = 'skiff_router_';
  p.counter(`${r}requests_total`, 'Requests received on the app port.', m.requests);
  p.gauge(`${r}requests_in_flight`, 'Requests received and not yet answered.', m.inFlight);
  p.counter(`${r}responses_total`, 'Responses sent, by status class (499: the client left first).', [
    [{ status_class: '2xx' }, m.responses['2xx']],
    [{ status_class: '3xx' }, m.responses['3xx']],
    [{ status_class: '4xx' }, m.responses['4xx']],
    [{ status_class: '5xx' }, m.responses['5xx']],
    [{ status_class: 'other' }, m.responses.other],
  ]);
  p.counter(`${r}bad_requests_total`, 'Requests the router refused itself (unknown route, bad Host, malformed).', m.badRequests);
  p.counter(`${r}bad_gateways_total`, '502/504 answered because an app failed.', m.badGateways);
  p.counter(`${r}client_aborts_total`, 'Clients that left before their response was complete.', m.clientAborts);
  p.counter(`${r}retries_total`, 'Further attempts on another endpoint or a fresh connection.', m.retries);
  p.counter(`${r}connection_limit_rejections_total`, 'Requests turned away because every endpoint was at its connection limit.', m.connectionLimitRejections);
  p.counter(`${r}pipelined_requests_total`, 'Requests written to an app while another was outstanding on the same connection.', m.pipeline.requests);
  p.counter(`${r}pipeline_replays_total`, 'Pipelined requests sent again on a connection of their own.', m.pipeline.replays);
  p.counter(`${r}pipeline_refusals_total`, 'App instances found closing connections on pipelined requests (served unpipelined since).', m.pipeline.refusals);
  p.counter(`${r}pipeline_stalls_total`, 'Pipelines whose waiting requests were moved off a slow response.', m.pipeline.stalls);
  p.summary(`${r}request_latency_seconds`, 'Time from request to last response byte.', m.latency.quantiles, m.latency.sum, m.latency.count);
  p.counter(
    `${r}app_requests_total`,
    'Requests that reached an app, for the 10 apps with the most requests since start.',
    m.topApps.map((a): [Labels, number] => [{ app_id: a.appId }, a.requests]),
  );
  p.gauge(`${r}routes`, 'Routes (uris) in the routing table.', m.routes);
  p.gauge(`${r}endpoints`, 'Registered app instance endpoints.', m.endpoints);
  p.counter(`${r}registry_messages_total`, 'router.register and router.unregister messages applied.', [
    [{ action: 'register' }, m.registerMessages],
    [{ action: 'unregister' }, m.unregisterMessages],
  ]);
  p.counter(`${r}rejected_messages_total`, 'Bus messages refused as malformed.', m.rejectedMessages);
  p.counter(`${r}slow_consumer_events_total`, 'Times a bus subscription fell behind and dropped messages.', m.slowConsumerEvents);
  p.gauge(
    `${r}ms_since_last_registry_update`,
    'Milliseconds since the routing table last changed by a bus message (-1: never).',
    m.msSinceLastRegistryUpdate ?? -1,
  );
  p.gauge(`${r}upstream_connections`, 'Open connections to app instances.', m.upstreamConnections);
  p.gauge(`${r}nats_connected`, '1 while connected to NATS.', m.natsConnected ? 1 : 0);
  p.counter(`${r}nats_permission_violations_total`, 'Publishes and subscriptions NATS refused to the router\'s user.', m.natsPermissionViolations);
  p.gauge(`${r}draining`, '1 while draining (health 503).', m.draining ? 1 : 0);
  if (m.websockets !== null) {
    p.gauge(`${r}websockets_open`, 'WebSockets open now.', m.websockets.open);
    p.counter(`${r}websockets_total`, 'WebSockets opened since start.', m.websockets.total);
    p.counter(`${r}websocket_bytes_total`, 'WebSocket message bytes relayed, by direction.', [
      [{ direction: 'client_to_app' }, m.websockets.bytesIn],
      [{ direction: 'app_to_client' }, m.websockets.bytesOut],
    ]);
    p.counter(`${r}websocket_upgrades_failed_total`, 'Upgrade requests answered with anything but 101.', m.websockets.upgradesFailed);
    p.counter(`${r}websocket_idle_timeouts_total`, 'WebSockets closed by the inactivity timeout.', m.websockets.idleTimeouts);
    p.counter(`${r}websocket_overflow_closes_total`, 'WebSockets closed (1013) because the app did not read what its client sent.', m.websockets.overflowCloses);
  }
  if (m.accessLog !== null) {
    p.counter(`${r}access_log_lines_total`, 'Access log lines written to the file.', m.accessLog.lines);
    p.counter(`${r}access_log_dropped_lines_total`, 'Access log lines dropped (disk stalled or failing).', m.accessLog.dropped);
    p.counter(`${r}access_log_write_errors_total`, 'Failed writes to the access log file.', m.accessLog.writeErrors);
  }
  p.gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch, in seconds.', m.startTimeSeconds);
  p.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', m.residentMemoryBytes);
  p.gauge('nodejs_heap_used_bytes', 'V8 heap in use, in bytes.', m.heapUsedBytes);
  return p.toString();
}
