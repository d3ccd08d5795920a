import { randomUUID } from 'node:crypto';
import { ComponentAnnouncer } from '../bus/component';
import { connectBus, redactUrl } from '../bus/connection';
import { parseRoleOptions } from '../bus/flags';
import { createLogger } from '../bus/log';
import { forgetMetricsPassword, processRegistry, serveMetrics, type MetricsServer } from '../bus/metrics-server';
import { untilStopSignal } from '../bus/role';
import { ServicesNode, ServicesSetupError } from './node';
import { ENV_PREFIX, parseServicesOptions, SERVICES_FLAGS } from './options';

/** `skiff services-node ...`: the data services of this node, until SIGTERM/SIGINT. */
export async function main(argv: string[]): Promise<number> {
  const options = parseRoleOptions('skiff services-node', SERVICES_FLAGS, ENV_PREFIX, () => parseServicesOptions(argv, process.env));
  if (typeof options === 'number') return options;
  forgetMetricsPassword(ENV_PREFIX);
  const log = createLogger('services');
  const startedAt = new Date();
  const bus = await connectBus({ servers: options.nats, auth: options.natsAuth, name: `skiff-services-${options.node}`, logger: log, waitForServer: true });
  const node = new ServicesNode(bus, {
    node: options.node,
    dataDir: options.dataDir,
    host: options.host,
    ports: options.ports,
    serviceIds: options.serviceIds,
    sweepIntervalMs: options.sweepIntervalMs,
  }, log);
  // A stop asked for while the instances come back waits for them: their records say where each one is.
  const stopped = untilStopSignal(log, 'stopping the data services');
  try {
    await node.start();
  } catch (error) {
    await node.stop();
    await bus.close();
    if (error instanceof ServicesSetupError) {
      process.stderr.write(`skiff services-node: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  let metrics: MetricsServer | undefined;
  try {
    metrics = await serveMetrics(options.metrics, [node.metrics.registry, processRegistry()]);
  } catch (error) {
    process.stderr.write(`skiff services-node: ${(error as Error).message}\n`);
    await node.stop();
    await bus.close();
    return 1;
  }
  const announcer = new ComponentAnnouncer(bus, { type: 'ServicesNode', index: 0, uuid: randomUUID(), host: () => options.host, node: options.node, startedAt, ...metrics?.announced() }, log);
  announcer.start();
  log.info('services node ready', { node: options.node, services: node.available().join(','), host: options.host, nats: redactUrl(options.nats), metrics: metrics?.reachableAt() });

  await stopped;
  announcer.stop();
  await metrics?.close();
  await node.stop();
  await bus.close();
  return 0;
}
