import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ComponentAnnouncer } from '../../bus/component';
import { openComponentConfig, type ComponentConfig } from '../../bus/config';
import { connectBus, redactUrl } from '../../bus/connection';
import { parseRoleOptions } from '../../bus/flags';
import { createLogger } from '../../bus/log';
import { forgetMetricsPassword, processRegistry, serveMetrics, type MetricsServer } from '../../bus/metrics-server';
import { prepareBuilds, StagerSetupError, type BuildUids } from './build-user';
import { applyLiveSettings } from './live-settings';
import { ENV_PREFIX, parseStagerOptions, STAGER_FLAGS, type StagerOptions } from './options';
import { StagerService } from './service';
import { Stager } from './stager';

/** `skiff stager ...`: parses flags, connects the bus, stages until a signal. */
export async function main(argv: string[]): Promise<number> {
  const log = createLogger('stager');
  const startedAt = new Date();
  const parsed = parseRoleOptions('skiff stager', STAGER_FLAGS, ENV_PREFIX, () => parseStagerOptions(argv, process.env));
  if (typeof parsed === 'number') return parsed;
  forgetMetricsPassword(ENV_PREFIX);
  const options: StagerOptions = parsed;

  // A directory of this process's own: stagers sharing --work-dir never touch each other's jobs.
  await mkdir(options.workDir, { recursive: true, mode: 0o711 });
  const workDir = await mkdtemp(join(options.workDir, 'stager-'));
  // As root, each job's build steps run as a uid of --build-uids; otherwise as this user (a warning says so).
  let buildUids: BuildUids | null;
  try {
    buildUids = await prepareBuilds(workDir, options.buildUids, log);
  } catch (error) {
    await rm(workDir, { recursive: true, force: true });
    if (!(error instanceof StagerSetupError)) throw error;
    process.stderr.write(`skiff stager: ${error.message}\n`);
    return 1;
  }
  const bus = await connectBus({ servers: options.nats, auth: options.natsAuth, name: 'skiff-stager', logger: log, waitForServer: true });
  const stager = new Stager(bus, {
    workDir,
    limits: { maxBytes: options.maxUnpackedBytes, maxEntries: options.maxFiles },
    commandTimeoutMs: options.commandTimeoutMs,
    // Staging commands find npm, node and python3 where the stager does, and nothing else of its environment.
    commandPath: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    maxPackageBytes: options.maxPackageBytes,
    buildUids,
  }, log);
  const service = new StagerService(bus, stager, { queue: options.queue, maxJobs: options.maxJobs, maxWaiting: options.maxWaiting }, log);
  let config: ComponentConfig | undefined;
  try {
    config = await openComponentConfig(bus, 'stager', log);
    applyLiveSettings(config, { service, stager }, options, log);
  } catch (error) {
    log.warn('config store unavailable; using flags and defaults', { error: (error as Error).message });
  }
  let metrics: MetricsServer | undefined;
  try {
    metrics = await serveMetrics(options.metrics, [service.metrics.registry, processRegistry()]);
  } catch (error) {
    process.stderr.write(`skiff stager: ${(error as Error).message}\n`);
    await config?.close();
    await bus.close();
    await rm(workDir, { recursive: true, force: true });
    return 1;
  }
  service.start();
  // A stager takes jobs from the bus and listens on no port but its metrics': others know it by its host.
  const announcer = new ComponentAnnouncer(bus, { type: 'Stager', index: 0, uuid: randomUUID(), host: () => hostname(), node: options.node, startedAt, ...metrics?.announced() }, log);
  announcer.start();
  await bus.flush();
  log.info('stager ready', { subject: service.subject, nats: redactUrl(options.nats), max_jobs: options.maxJobs, work_dir: workDir, metrics: metrics?.reachableAt() });

  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info('stopping', { signal, running: service.activeJobs, waiting: service.waitingJobs });
      resolve();
    };
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, onSignal);
  });
  announcer.stop();
  await service.stop();
  await metrics?.close();
  await config?.close();
  await bus.close();
  await rm(workDir, { recursive: true, force: true });
  return 0;
}
