import { randomBytes } from 'node:crypto';
import { openComponentConfig, type ComponentConfig } from '../bus/config';
import { connectBus, redactUrl } from '../bus/connection';
import { parseRoleOptions } from '../bus/flags';
import { createLogger } from '../bus/log';
import { ENV_PREFIX, parseRouterOptions, ROUTER_FLAGS } from './options';
import { Router } from './router';
import { ThreadPool } from './threads';

/** `skiff router ...`: parses flags, connects the bus and the config store, runs until a signal. */
export async function main(argv: string[]): Promise<number> {
  const log = createLogger('router');
  const options = parseRoleOptions('skiff router', ROUTER_FLAGS, ENV_PREFIX, () =>
    parseRouterOptions(argv, process.env, () => randomBytes(12).toString('base64url')),
  );
  if (typeof options === 'number') return options;

  const bus = await connectBus({ servers: options.nats, auth: options.natsAuth, name: 'skiff-router', logger: log, waitForServer: true });
  let config: ComponentConfig | undefined;
  try {
    config = await openComponentConfig(bus, 'router', log);
  } catch (error) {
    log.warn('config store unavailable; using flags and defaults', { error: (error as Error).message });
  }

  const router = new Router(options, bus, log, config);
  await router.start();
  let threads: ThreadPool | null = null;
  if (options.threads > 1) {
    try {
      threads = await ThreadPool.start(
        options.threads - 1,
        { argv, port: router.port, statusUser: options.statusUser, statusPassword: options.statusPassword, nats: options.nats, natsAuth: options.natsAuth },
        () => router.registry.registrations(Date.now()),
        log,
      );
    } catch (error) {
      await router.stop();
      await config?.close();
      await bus.close();
      throw error;
    }
    const pool = threads;
    router.peerFigures = () => pool.figures();
    router.threadCount = options.threads;
  }
  log.info('router listening', {
    port: router.port,
    status_port: router.statusPort,
    threads: options.threads,
    nats: redactUrl(options.nats),
    lb: router.settings.lbAlgorithm,
  });
  if (options.statusCredentialsGenerated) {
    // Asked for by operators: with no password given, this line is the only way to learn it.
    log.info('status credentials generated', { user: options.statusUser, password: options.statusPassword });
  }

  // SIGUSR1: drain (health 503, --drain-wait, stop accepting, in-flight requests
  // finish within --drain-timeout), then exit 0. SIGTERM/SIGINT: the same
  // without the wait (also cutting a SIGUSR1 wait short); a second SIGINT cuts
  // what is left. SIGHUP: reopen the access log. Handlers stay installed to the
  // end, so no late signal falls back to Node's default (exit by signal, or the
  // inspector for SIGUSR1).
  await new Promise<void>((resolve) => {
    let interrupts = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signal === 'SIGHUP') {
        threads?.reopenAccessLogs();
        if (router.reopenAccessLog()) log.info('SIGHUP: reopening the access log');
        else log.info('SIGHUP: no access log to reopen');
        return;
      }
      if (signal === 'SIGINT' && ++interrupts > 1) {
        log.warn('second SIGINT: cutting in-flight requests');
        router.drainer.force();
        threads?.force();
        return;
      }
      if (signal === 'SIGUSR1' && router.drainer.draining) {
        log.info('SIGUSR1: already draining');
        return;
      }
      const waitMs = signal === 'SIGUSR1' ? options.drainWaitMs : 0;
      log.info('stopping', { signal, drain_wait_s: waitMs / 1000, drain_timeout_s: options.drainTimeoutMs / 1000 });
      Promise.all([router.drain(waitMs), threads?.drain(waitMs, options.drainTimeoutMs)]).then(
        () => resolve(),
        (error: unknown) => {
          log.error('drain failed', { error });
          resolve();
        },
      );
    };
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGUSR1', 'SIGHUP'] as const) process.on(signal, onSignal);
  });
  await threads?.stop();
  await router.stop();
  await config?.close();
  await bus.close();
  return 0;
}
