import { connectBus, redactUrl } from '../../bus/connection';
import { parseRoleOptions } from '../../bus/flags';
import { createLogger } from '../../bus/log';
import { forgetMetricsPassword, serveMetrics, type MetricsServer } from '../../bus/metrics-server';
import { untilStopSignal } from '../../bus/role';
import { Controller } from './controller';
import { ownRegistry } from './metrics';
import { CONTROLLER_FLAGS, ENV_PREFIX, parseControllerOptions } from './options';

/** `skiff controller ...`: parses flags, connects the bus, serves the API until SIGTERM/SIGINT. */
export async function main(argv: string[]): Promise<number> {
  const log = createLogger('controller');
  const options = parseRoleOptions('skiff controller', CONTROLLER_FLAGS, ENV_PREFIX, () => parseControllerOptions(argv, process.env));
  if (typeof options === 'number') return options;
  forgetMetricsPassword(ENV_PREFIX);
  // The admin password has done its job once read: keep it out of anything this process spawns or dumps.
  delete process.env.SKIFF_ADMIN_PASSWORD;

  // Its own figures only (requests, placements, the process): the cluster's are on the API's GET /metrics.
  let metrics: MetricsServer | undefined;
  try {
    metrics = await serveMetrics(options.metrics, [ownRegistry]);
  } catch (error) {
    process.stderr.write(`skiff controller: ${(error as Error).message}\n`);
    return 1;
  }
  const bus = await connectBus({ servers: options.nats, auth: options.natsAuth, name: 'skiff-controller', logger: log, waitForServer: true });
  const controller = new Controller(options, bus, log, metrics);
  try {
    await controller.start();
  } catch (error) {
    await controller.stop();
    await bus.close();
    await metrics?.close();
    throw error;
  }
  log.info('controller listening', { port: controller.port, host: options.host, domain: options.domain, nats: redactUrl(options.nats), metrics: metrics?.reachableAt() });

  await untilStopSignal(log);
  await controller.stop();
  await bus.close();
  await metrics?.close();
  return 0;
}
