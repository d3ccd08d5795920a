import { hostname } from 'node:os';
import { ComponentAnnouncer } from '../../bus/component';
import { openComponentConfig, type ComponentConfig } from '../../bus/config';
import { connectBus, redactUrl } from '../../bus/connection';
import { parseRoleOptions } from '../../bus/flags';
import { createLogger } from '../../bus/log';
import { forgetMetricsPassword, processRegistry, serveMetrics, type MetricsServer } from '../../bus/metrics-server';
import { untilStopSignal } from '../../bus/role';
import { HealthManager } from './manager';
import { ENV_PREFIX, HEALTH_FLAGS, parseHealthOptions } from './options';

/** `skiff health ...`: parses flags, connects the bus and the config store, runs until SIGTERM/SIGINT. */
export async function main(argv: string[]): Promise<number> {
  const log = createLogger('health');
  const startedAt = new Date();
  const options = parseRoleOptions('skiff health', HEALTH_FLAGS, ENV_PREFIX, () => parseHealthOptions(argv, process.env));
  if (typeof options === 'number') return options;
  forgetMetricsPassword(ENV_PREFIX);

  const bus = await connectBus({ servers: options.nats, auth: options.natsAuth, name: 'skiff-health', logger: log, waitForServer: true });
  let config: ComponentConfig | undefined;
  try {
    config = await openComponentConfig(bus, 'health', log);
  } catch (error) {
    log.warn('config store unavailable; using flags and defaults', { error: (error as Error).message });
  }
  let autoscaleConfig: ComponentConfig | undefined;
  try {
    autoscaleConfig = await openComponentConfig(bus, 'autoscale', log);
  } catch (error) {
    log.warn('config store unavailable for autoscale.*; using defaults', { error: (error as Error).message });
  }
  const manager = new HealthManager(bus, log, config, { overrides: options.overrides, autoscaleConfig });
  try {
    await manager.start();
  } catch (error) {
    await manager.stop();
    await config?.close();
    await autoscaleConfig?.close();
    await bus.close();
    throw error;
  }
  let metrics: MetricsServer | undefined;
  try {
    metrics = await serveMetrics(options.metrics, [manager.metrics.registry, processRegistry()]);
  } catch (error) {
    process.stderr.write(`skiff health: ${(error as Error).message}\n`);
    await manager.stop();
    await config?.close();
    await bus.close();
    return 1;
  }
  const announcer = new ComponentAnnouncer(bus, { type: 'HealthManager', index: 0, uuid: manager.id, host: () => hostname(), node: options.node, startedAt, ...metrics?.announced() }, log);
  announcer.start();
  const s = manager.settings;
  log.info('health manager running', {
    id: manager.id,
    nats: redactUrl(options.nats),
    droplet_lost_s: s.dropletLostMs / 1000,
    flapping_timeout_s: s.flappingTimeoutMs / 1000,
    flapping_death: s.flappingDeath,
    min_restart_delay_s: s.minRestartDelayMs / 1000,
    max_restart_delay_s: s.maxRestartDelayMs / 1000,
    giveup_crash_number: s.giveupCrashNumber,
    analysis_interval_s: s.analysisIntervalMs / 1000,
    metrics: metrics?.reachableAt(),
  });

  await untilStopSignal(log);
  announcer.stop();
  await manager.stop();
  await metrics?.close();
  await config?.close();
  await autoscaleConfig?.close();
  await bus.close();
  return 0;
}
