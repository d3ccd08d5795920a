import { hostname } from 'node:os';
import { join } from 'node:path';
import { ComponentAnnouncer } from '../bus/component';
import { openComponentConfig, type ComponentConfig } from '../bus/config';
import { connectBus, redactUrl } from '../bus/connection';
import { parseRoleOptions, UsageError } from '../bus/flags';
import { createLogger } from '../bus/log';
import { forgetMetricsPassword, processRegistry, serveMetrics, type MetricsServer } from '../bus/metrics-server';
import { checkSetting } from '../bus/settings';
import { untilStopSignal } from '../bus/role';
import { Dea, DeaSetupError } from './agent';
import { DEA_FLAGS, DEFAULT_MEMORY_MB, ENV_PREFIX, parseDeaOptions } from './options';

/** `skiff dea ...`: parses flags, connects the bus and the config store, runs instances until SIGTERM/SIGINT. */
export async function main(argv: string[]): Promise<number> {
  const isRoot = process.getuid?.() === 0;
  const options = parseRoleOptions('skiff dea', DEA_FLAGS, ENV_PREFIX, () => {
    const parsed = parseDeaOptions(argv, process.env, isRoot);
    if (parsed.user !== undefined && !isRoot) throw new UsageError('--user needs the DEA to run as root');
    return parsed;
  });
  if (typeof options === 'number') return options;
  forgetMetricsPassword(ENV_PREFIX);
  const log = createLogger(`dea-${options.index}`);
  const startedAt = new Date();

  const bus = await connectBus({ servers: options.nats, auth: options.natsAuth, name: `skiff-dea-${options.index}`, logger: log, waitForServer: true });
  let config: ComponentConfig | undefined;
  try {
    config = await openComponentConfig(bus, 'dea', log);
  } catch (error) {
    log.warn('config store unavailable; using flags and defaults', { error: (error as Error).message });
  }

  const dea = new Dea(
    {
      dataDir: options.dataDir,
      baseDir: join(options.dataDir, 'dea', String(options.index)),
      index: options.index,
      host: options.host,
      portRange: options.portRange,
      startTimeoutMs: options.startTimeoutMs,
      stopGraceMs: options.stopGraceMs,
      memoryMb: options.memoryMb,
      defaultMemoryMb: DEFAULT_MEMORY_MB,
      user: options.user ?? 'nobody',
      appUids: options.appUids,
      serviceGids: options.serviceGids,
      crashKeepMs: options.crashKeepMs,
      node: options.node,
    },
    bus,
    log,
    config,
  );
  config?.onChange((setting, value) => {
    if (setting !== 'max_memory_mb') return;
    const checked = value === undefined ? undefined : checkSetting('dea.max_memory_mb', value);
    if (checked !== undefined && !checked.ok) log.warn('ignoring invalid dea.max_memory_mb, using the default', { error: checked.error, effective_mb: dea.maxMemoryMb });
    else log.info('dea.max_memory_mb changed', { value: value ?? 'default', effective_mb: dea.maxMemoryMb });
  });
  try {
    await dea.start();
  } catch (error) {
    await config?.close();
    await bus.close();
    if (error instanceof DeaSetupError) {
      process.stderr.write(`skiff dea: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  let metrics: MetricsServer | undefined;
  try {
    metrics = await serveMetrics(options.metrics, [dea.metrics.registry, processRegistry()]);
  } catch (error) {
    await dea.stop('DEA_SHUTDOWN');
    await config?.close();
    await bus.close();
    process.stderr.write(`skiff dea: ${(error as Error).message}\n`);
    return 1;
  }
  // The DEA listens on no port but its metrics'; routers reach its apps at --host.
  const wildcard = options.host === '0.0.0.0' || options.host === '::';
  const announcer = new ComponentAnnouncer(bus, { type: 'DEA', index: options.index, uuid: dea.id, host: () => (wildcard ? hostname() : options.host), node: options.node, startedAt, ...metrics?.announced() }, log);
  announcer.start();
  log.info('DEA listening', { nats: redactUrl(options.nats), node: options.node, metrics: metrics?.reachableAt() });

  await untilStopSignal(log, 'stopping all instances');
  announcer.stop();
  await dea.stop('DEA_SHUTDOWN');
  await metrics?.close();
  await config?.close();
  await bus.close();
  return 0;
}
