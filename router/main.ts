import { randomBytes } from 'node:crypto';
import { openComponentConfig, type ComponentConfig } from '../bus/config';
import { connectBus, redactUrl } from '../bus/connection';
import { helpText, UsageError } from '../bus/flags';
import { createLogger } from '../bus/log';
import { ENV_PREFIX, parseRouterOptions, ROUTER_FLAGS } from './options';
import { Router } from './router';

/** `skiff router ...`: parses flags, connects the bus and the config store, runs until a signal. */
export async function main(argv: string[]): Promise<number> {
  const log = createLogger('router');
  let options: ReturnType<typeof parseRouterOptions>;
  try {
    options = parseRouterOptions(argv, process.env, () => randomBytes(12).toString('base64url'));
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`skiff router: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (options.help) {
    process.stdout.write(helpText('skiff router', ROUTER_FLAGS, ENV_PREFIX) + '\n');
    return 0;
  }

  const bus = await connectBus({ servers: options.nats, name: 'skiff-router', logger: log, waitForServer: true });
  let config: ComponentConfig | undefined;
  try {
    config = await openComponentConfig(bus, 'router', log);
  } catch (error) {
    log.warn('config store unavailable; using flags and defaults', { error: (error as Error).message });
  }

  const router = new Router(options, bus, log, config);
  await router.start();
  log.info('router listening', {
    port: router.port,
    status_port: router.statusPort,
    nats: redactUrl(options.nats),
    lb: router.settings.lbAlgorithm,
  });
  if (options.statusCredentialsGenerated) {
    // Asked for by operators: with no password given, this line is the only way to learn it.
    log.info('status credentials generated', { user: options.statusUser, password: options.statusPassword });
  }

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info('stopping', { signal });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await router.stop();
  await config?.close();
  await bus.close();
  return 0;
}
