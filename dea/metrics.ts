// The DEA's own Prometheus metrics (its --metrics-port, bus/metrics-server.ts):
// its instances by state, each app's CPU, memory and disk on this DEA, and
// starts, stops and crashes. Gauges are read at each scrape from the same
// samples dea.stats carries. Names and labels: dea/METRICS.md.

import { Counter, Gauge, Registry } from 'prom-client';
import { EXIT_REASONS, type DeaStats } from '../bus/messages';

/** What the gauges read: the latest dea.stats, and app names by id (the DEA knows them from the start requests). */
export interface DeaMetricsSource {
  usageStats(): DeaStats;
  appName(id: string): string | undefined;
}

/** States an instance of this DEA may be in while listed (dea.stats lists no stopped one). */
const LISTED_STATES = ['STARTING', 'RUNNING', 'STOPPING', 'CRASHED'] as const;

export class DeaMetrics {
  readonly registry = new Registry();
  readonly starts: Counter;
  readonly stops: Counter<'reason'>;
  readonly crashes: Counter;

  constructor(source: DeaMetricsSource) {
    const registers = [this.registry];
    this.starts = new Counter({ name: 'skiff_dea_instance_starts_total', help: 'Instances this DEA accepted to start.', registers });
    this.stops = new Counter({ name: 'skiff_dea_instance_stops_total', help: 'Instances that stopped other than by crashing, by reason.', labelNames: ['reason'] as const, registers });
    for (const reason of EXIT_REASONS) if (reason !== 'CRASHED') this.stops.inc({ reason }, 0);
    this.crashes = new Counter({ name: 'skiff_dea_instance_crashes_total', help: 'Instances whose process exited without being asked to.', registers });

    // One sample of dea.stats per scrape, shared by the gauges below (each collect() runs in the same scrape).
    let sampled: { at: number; stats: DeaStats } | undefined;
    const stats = (): DeaStats => {
      const now = Date.now();
      if (sampled === undefined || now - sampled.at > 100) sampled = { at: now, stats: source.usageStats() };
      return sampled.stats;
    };
    const perApp = (gauge: Gauge<'app' | 'app_id'>, pick: (i: DeaStats['instances'][number]) => number): void => {
      gauge.reset();
      const sums = new Map<string, number>();
      for (const i of stats().instances) if (i.state === 'RUNNING') sums.set(i.app, (sums.get(i.app) ?? 0) + pick(i));
      for (const [id, value] of sums) gauge.set({ app: source.appName(id) ?? id, app_id: id }, value);
    };

    new Gauge({
      name: 'skiff_dea_instances', help: 'Instances on this DEA by state.', labelNames: ['state'] as const, registers,
      collect() {
        const counts = new Map<string, number>(LISTED_STATES.map((s) => [s, 0]));
        for (const i of stats().instances) counts.set(i.state, (counts.get(i.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'skiff_dea_app_instances', help: 'Running instances of each app on this DEA.', labelNames: ['app', 'app_id'] as const, registers,
      collect() { perApp(this, () => 1); },
    });
    new Gauge({
      name: 'skiff_dea_app_cpu_percent', help: 'CPU of each app\'s running instances on this DEA, percent of one core, summed.', labelNames: ['app', 'app_id'] as const, registers,
      collect() { perApp(this, (i) => i.cpu); },
    });
    new Gauge({
      name: 'skiff_dea_app_memory_bytes', help: 'Resident memory of each app\'s running instances on this DEA, summed.', labelNames: ['app', 'app_id'] as const, registers,
      collect() { perApp(this, (i) => i.mem_kb * 1024); },
    });
    new Gauge({
      name: 'skiff_dea_app_disk_bytes', help: 'Disk used by each app\'s running instances on this DEA (measured at most every 10 s), summed.', labelNames: ['app', 'app_id'] as const, registers,
      collect() { perApp(this, (i) => i.disk_bytes); },
    });
    new Gauge({
      name: 'skiff_dea_memory_bytes', help: 'Memory this DEA may hand out to instances.', registers,
      collect() { this.set(stats().memory.total_mb * 1048576); },
    });
    new Gauge({
      name: 'skiff_dea_memory_reserved_bytes', help: 'Memory this DEA reserved for its instances.', registers,
      collect() { this.set(stats().memory.reserved_mb * 1048576); },
    });
  }
}
