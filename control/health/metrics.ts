// The health manager's own Prometheus metrics (its --metrics-port,
// bus/metrics-server.ts). Names and labels: control/METRICS.md.

import { Counter, Gauge, Registry } from 'prom-client';

/**
 * What the acting manager decided, per instance: start (an index without a
 * live instance), flapping (the same, for an index that crashes over and
 * over: started after a backoff), stop (an instance not wanted), given_up
 * (an index that crashed too often: no more restarts until the app changes).
 */
export type DecisionKind = 'start' | 'flapping' | 'stop' | 'given_up';

export class HealthMetrics {
  readonly registry = new Registry();
  readonly decisions: Counter<'kind'>;
  readonly passes: Counter;
  readonly failedPasses: Counter;

  constructor(leader: () => boolean) {
    const registers = [this.registry];
    this.decisions = new Counter({ name: 'skiff_health_decisions_total', help: 'Instances the acting health manager asked to start or stop, or gave up on, by kind.', labelNames: ['kind'] as const, registers });
    for (const kind of ['start', 'flapping', 'stop', 'given_up'] as const) this.decisions.inc({ kind }, 0);
    this.passes = new Counter({ name: 'skiff_health_analysis_passes_total', help: 'Analysis passes (desired against actual state) run, acting or watching.', registers });
    this.failedPasses = new Counter({ name: 'skiff_health_analysis_failures_total', help: 'Analysis passes that failed (the next one retries).', registers });
    new Gauge({ name: 'skiff_health_leader', help: '1 while this health manager holds the analysis lease and acts, 0 while it watches.', registers, collect() { this.set(leader() ? 1 : 0); } });
  }
}
