import { connectBus, redactUrl } from '../../bus/connection';
import { parseRoleOptions } from '../../bus/flags';
import { createLogger } from '../../bus/log';
import { untilStopSignal } from '../../bus/role';
import { Controller } from './controller';
import { CONTROLLER_FLAGS, ENV_PREFIX, parseControllerOptions } from './options';

/** `skiff controller ...`: parses flags, connects the bus, serves the API until SIGTERM/SIGINT. */
export async function main(argv: string[]): Promise<number> {
  const log = createLogger('controller');
  const options = parseRoleOptions('skiff controller', CONTROLLER_FLAGS, ENV_PREFIX, () => parseControllerOptions(argv, process.env));
  if (typeof options === 'number') return options;
  // The admin password has done its job once read: keep it out of anything this process spawns or dumps.
  delete process.env.SKIFF_ADMIN_PASSWORD;

  const bus = await connectBus({ servers: options.nats, auth: options.natsAuth, name: 'skiff-controller', logger: log, waitForServer: true });
  const controller = new Controller(options, bus, log);
  try {
    await controller.start();
  } catch (error) {
    await controller.stop();
    await bus.close();
    throw error;
  }
  log.info('controller listening', { port: controller.port, host: options.host, domain: options.domain, nats: redactUrl(options.nats) });

  await untilStopSignal(log);
  await controller.stop();
  await bus.close();
  return 0;
}
