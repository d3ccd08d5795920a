// GET /metrics on the API: the cluster by app, gathered over NATS from every
// router (router.app_stats) and DEA (dea.stats) through bus/app-stats.ts,
// plus the controller's own figures. One scrape target covers a cluster.
// Names and labels are listed in control/METRICS.md.

import { collectDefaultMetrics, Counter, Histogram, Registry, type Metric, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { sumApps, type AppStatsCollector } from '../../bus/app-stats';
import { APP_LATENCY_BUCKETS } from '../../bus/messages';
import type { AppRecord } from './store';

/** The controller's own metrics: one registry per process (every route and placement counts into it). */
export const ownRegistry = new Registry();
collectDefaultMetrics({ register: ownRegistry });

export const apiRequests = new Counter({
  name: 'skiff_controller_http_requests_total',
  help: 'API requests answered, by method, route (its pattern, /apps/:name; none when no route took it) and status code.',
  labelNames: ['method', 'route', 'code'] as const,
  registers: [ownRegistry],
});

export const apiDuration = new Histogram({
  name: 'skiff_controller_http_request_duration_seconds',
  help: 'Time to answer an API request (streams: until the head was sent).',
  labelNames: ['method'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [ownRegistry],
});

export const placements = new Counter({
  name: 'skiff_controller_placements_total',
  help: 'App instances the controller asked a DEA to start (placed) or could place nowhere (unplaced).',
  labelNames: ['result'] as const,
  registers: [ownRegistry],
});

type Labels = Record<string, string | number>;

/**
 * A metric whose samples are computed at each scrape from what the bus
 * brought: prom-client renders it like its own (Registry.registerMetric
 * takes anything with a name and get()).
 */
function snapshotMetric(name: string, help: string, type: 'gauge' | 'counter' | 'histogram', values: () => Array<MetricValue<string> & { metricName?: string }>): Metric {
  return {
    name,
    help,
    type,
    get: async (): Promise<MetricObjectWithValues<MetricValue<string>>> => ({ name, help, type, values: values(), aggregator: 'sum' }) as never,
  } as unknown as Metric;
}

export interface ClusterSources {
  stats: AppStatsCollector;
  /** Every app of the platform (names for ids, desired instances). */
  apps: () => Promise<AppRecord[]>;
}

/** The whole exposition: cluster view, then the controller's own. */
export async function clusterMetrics(sources: ClusterSources): Promise<string> {
  const apps = await sources.apps();
  const names = new Map(apps.map((a) => [a.id, a.name]));
  const label = (id: string): string => names.get(id) ?? id;
  const routers = sources.stats.latestRouters();
  const deas = sources.stats.latestDeas();
  const totals = sumApps(routers);

  const registry = new Registry();
  const sample = (labels: Labels, value: number, metricName?: string) => ({ labels, value, ...(metricName !== undefined ? { metricName } : {}) });

  registry.registerMetric(snapshotMetric('skiff_app_instances', 'App instances the DEAs report, by state.', 'gauge', () => {
    const counts = new Map<string, number>();
    for (const dea of deas) for (const i of dea.instances) counts.set(`${i.app}\n${i.state}`, (counts.get(`${i.app}\n${i.state}`) ?? 0) + 1);
    // A started app with nothing running shows 0, so an alert on it can fire.
    for (const app of apps) if (app.state === 'STARTED' && !counts.has(`${app.id}\nRUNNING`)) counts.set(`${app.id}\nRUNNING`, 0);
    return [...counts].map(([key, n]) => {
      const [app, state] = key.split('\n') as [string, string];
      return sample({ app: label(app), state }, n);
    });
  }));
  registry.registerMetric(snapshotMetric('skiff_app_desired_instances', 'Instances asked for, for started apps.', 'gauge', () =>
    apps.filter((a) => a.state === 'STARTED').map((a) => sample({ app: a.name }, a.instances)),
  ));
  registry.registerMetric(snapshotMetric('skiff_app_requests_total', 'Responses to requests for the app, by status code, summed over routers (since each started).', 'counter', () => {
    const out = [];
    for (const [app, t] of totals) for (const [code, n] of Object.entries(t.codes)) out.push(sample({ app: label(app), code }, n));
    return out;
  }));
  registry.registerMetric(snapshotMetric('skiff_app_request_duration_seconds', 'Time to the last byte of the response, per app, summed over routers.', 'histogram', () => {
    const out = [];
    for (const [app, t] of totals) {
      const name = label(app);
      let cumulative = 0;
      for (let i = 0; i < APP_LATENCY_BUCKETS.length; i++) {
        cumulative += t.counts[i]!;
        out.push(sample({ app: name, le: APP_LATENCY_BUCKETS[i]! }, cumulative, 'skiff_app_request_duration_seconds_bucket'));
      }
      out.push(sample({ app: name, le: '+Inf' }, t.count, 'skiff_app_request_duration_seconds_bucket'));
      out.push(sample({ app: name }, t.sum, 'skiff_app_request_duration_seconds_sum'));
      out.push(sample({ app: name }, t.count, 'skiff_app_request_duration_seconds_count'));
    }
    return out;
  }));
  const perApp = (pick: (i: (typeof deas)[number]['instances'][number]) => number) => {
    const sums = new Map<string, number>();
    for (const dea of deas) for (const i of dea.instances) if (i.state === 'RUNNING') sums.set(i.app, (sums.get(i.app) ?? 0) + pick(i));
    return [...sums].map(([app, v]) => sample({ app: label(app) }, v));
  };
  registry.registerMetric(snapshotMetric('skiff_app_cpu_percent', 'CPU of the app\'s running instances, percent of one core, summed.', 'gauge', () => perApp((i) => i.cpu)));
  registry.registerMetric(snapshotMetric('skiff_app_memory_bytes', 'Resident memory of the app\'s running instances, summed.', 'gauge', () => perApp((i) => i.mem_kb * 1024)));
  registry.registerMetric(snapshotMetric('skiff_app_disk_bytes', 'Disk used by the app\'s running instances, summed.', 'gauge', () => perApp((i) => i.disk_bytes)));
  registry.registerMetric(snapshotMetric('skiff_dea_memory_reserved_bytes', 'Memory a DEA has reserved for instances.', 'gauge', () =>
    deas.map((d) => sample({ dea: d.dea, ...(d.node !== undefined ? { node: d.node } : {}) }, d.memory.reserved_mb * 1048576)),
  ));
  registry.registerMetric(snapshotMetric('skiff_dea_memory_bytes', 'Memory a DEA may hand out to instances.', 'gauge', () =>
    deas.map((d) => sample({ dea: d.dea, ...(d.node !== undefined ? { node: d.node } : {}) }, d.memory.total_mb * 1048576)),
  ));
  registry.registerMetric(snapshotMetric('skiff_router_requests_total', 'Requests a router passed to apps (since it started).', 'counter', () =>
    routers.map((r) => {
      let n = 0;
      for (const t of Object.values(r.apps)) n += t.latency.count;
      return sample({ router: r.host }, n);
    }),
  ));
  registry.registerMetric(snapshotMetric('skiff_stats_senders', 'Routers and DEAs heard from in the last 15 s.', 'gauge', () => [
    sample({ kind: 'router' }, routers.length),
    sample({ kind: 'dea' }, deas.length),
  ]));
  registry.registerMetric(snapshotMetric('skiff_stats_rejected_messages_total', 'router.app_stats and dea.stats messages refused as malformed.', 'counter', () => [
    sample({}, sources.stats.rejections.total),
  ]));
  return (await registry.metrics()) + '\n' + (await ownRegistry.metrics());
}

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
