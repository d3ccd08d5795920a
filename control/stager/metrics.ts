// The stager's own Prometheus metrics (its --metrics-port, bus/metrics-server.ts).
// Names and labels: control/METRICS.md.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** How a staging request ended: staged, failed (the app's build failed, or it was cancelled), busy (refused: queue full), invalid. */
export type StagingResult = 'staged' | 'failed' | 'busy' | 'invalid';

export class StagerMetrics {
  readonly registry = new Registry();
  readonly jobs: Counter<'result'>;
  readonly duration: Histogram<'result'>;

  constructor(load: () => { running: number; waiting: number }) {
    const registers = [this.registry];
    this.jobs = new Counter({ name: 'skiff_stager_jobs_total', help: 'Staging requests by how they ended.', labelNames: ['result'] as const, registers });
    // Every result shows from the start, at 0, so rate() and alerts see a series before the first failure.
    for (const result of ['staged', 'failed', 'busy', 'invalid'] as const) this.jobs.inc({ result }, 0);
    this.duration = new Histogram({
      name: 'skiff_stager_staging_duration_seconds',
      help: 'Time from taking a job (after any wait for a slot) to its reply, by result.',
      labelNames: ['result'] as const,
      buckets: [1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 900],
      registers,
    });
    new Gauge({ name: 'skiff_stager_jobs_running', help: 'Jobs staging now.', registers, collect() { this.set(load().running); } });
    new Gauge({ name: 'skiff_stager_jobs_waiting', help: 'Jobs waiting for a free slot.', registers, collect() { this.set(load().waiting); } });
  }
}
