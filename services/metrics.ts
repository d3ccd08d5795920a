// The services node's own Prometheus metrics (its --metrics-port,
// bus/metrics-server.ts). Names and labels: services/METRICS.md.

import { Counter, Gauge, Registry } from 'prom-client';
import { SERVICE_LABELS, type ServiceLabel } from '../bus/platform';

export type Operation = 'provision' | 'deprovision' | 'bind' | 'unbind';

/** What a scrape learns of this node's instances: each one's service and whether it is healthy now. */
export type InstanceHealth = () => Promise<Array<{ service: ServiceLabel; healthy: boolean }>>;

/**
 * A scrape checks the instances (a redis PING, a size query, a walk of a
 * directory), so the answer is kept a while: Prometheus, or two of them,
 * scraping every few seconds must not keep the backends busy.
 */
const HEALTH_CACHE_MS = 10_000;

export class ServicesMetrics {
  readonly registry = new Registry();
  readonly operations: Counter<'operation' | 'service' | 'result'>;
  readonly backendRestarts: Counter<'service'>;
  private checked: { at: number; result: Promise<Array<{ service: ServiceLabel; healthy: boolean }>> } | undefined;

  constructor(instances: InstanceHealth) {
    const registers = [this.registry];
    this.operations = new Counter({
      name: 'skiff_services_operations_total',
      help: 'Requests of the controller answered, by operation (provision, deprovision, bind, unbind), service, and result (ok, or the refusal\'s code).',
      labelNames: ['operation', 'service', 'result'] as const,
      registers,
    });
    for (const operation of ['provision', 'deprovision', 'bind', 'unbind'] as const) {
      for (const service of SERVICE_LABELS) this.operations.inc({ operation, service, result: 'ok' }, 0);
    }
    this.backendRestarts = new Counter({ name: 'skiff_services_backend_restarts_total', help: 'Backend processes (a redis-server, the PostgreSQL cluster) restarted after they died, by service.', labelNames: ['service'] as const, registers });
    for (const service of ['redis', 'postgresql'] as const) this.backendRestarts.inc({ service }, 0);
    const self = this;
    new Gauge({
      name: 'skiff_services_instances',
      help: 'Service instances of this node, by service and health (healthy, unhealthy: not running, not answering, or being provisioned or deprovisioned), as checked at most every 10 s.',
      labelNames: ['service', 'health'] as const,
      registers,
      async collect() {
        const counts = new Map<string, number>();
        for (const service of SERVICE_LABELS) for (const health of ['healthy', 'unhealthy']) counts.set(`${service} ${health}`, 0);
        for (const instance of await self.health(instances)) {
          const key = `${instance.service} ${instance.healthy ? 'healthy' : 'unhealthy'}`;
          counts.set(key, counts.get(key)! + 1);
        }
        this.reset();
        for (const [key, count] of counts) {
          const [service, health] = key.split(' ');
          this.set({ service: service!, health: health! }, count);
        }
      },
    });
  }

  private health(instances: InstanceHealth): Promise<Array<{ service: ServiceLabel; healthy: boolean }>> {
    if (this.checked === undefined || Date.now() - this.checked.at > HEALTH_CACHE_MS) {
      this.checked = { at: Date.now(), result: instances().catch(() => []) };
    }
    return this.checked.result;
  }
}
