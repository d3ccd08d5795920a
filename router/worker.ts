import { parentPort, workerData } from 'node:worker_threads';
import { openComponentConfig, type ComponentConfig } from '../bus/config';
import { connectBus } from '../bus/connection';
import { createLogger } from '../bus/log';
import type { RouterRegister } from '../bus/messages';
import { parseRouterOptions } from './options';
import { Router } from './router';
import { FIGURES_INTERVAL_MS, type FromWorker, type ToWorker, type WorkerData } from './threads';

// A worker thread of `--threads` (see threads.ts): a full router on the first
// thread's port, without the status port, reporting its figures.

async function runWorker(port: NonNullable<typeof parentPort>, data: WorkerData): Promise<void> {
  const log = createLogger(`router.${data.thread}`);
  const post = (message: FromWorker): void => port.postMessage(message);
  const options = {
    ...parseRouterOptions(data.argv, process.env, () => data.statusPassword),
    port: data.port,
    statusUser: data.statusUser,
    statusPassword: data.statusPassword,
    nats: data.nats,
    natsAuth: data.natsAuth,
    // Routes were collected while the first thread waited; this one collects its own meanwhile.
    startDelayMs: 0,
  };
  const bus = await connectBus({ servers: options.nats, name: `skiff-router-${data.thread}`, logger: log, waitForServer: true });
  let config: ComponentConfig | undefined;
  try {
    config = await openComponentConfig(bus, 'router', log);
  } catch {
    // The first thread already warned about it.
  }
  const router = new Router(options, bus, log, config, data.thread);
  // The table must be whole before this thread takes connections: once
  // subscribed, it loads the first thread's table, then listens.
  const routes = new Promise<RouterRegister[]>((resolve) => {
    const onRoutes = (message: ToWorker): void => {
      if (message.type !== 'routes') return;
      port.off('message', onRoutes);
      resolve(message.registrations);
    };
    port.on('message', onRoutes);
  });
  await router.start(async () => {
    // Once flushed, the server has the subscription: nothing published later is missed.
    await bus.flush();
    post({ type: 'subscribed' });
    const now = Date.now();
    for (const registration of await routes) router.registry.register(registration, now);
  });
  post({ type: 'ready', port: router.port });
  const figures = setInterval(() => post({ type: 'figures', figures: router.figures() }), FIGURES_INTERVAL_MS);

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    clearInterval(figures);
    await router.stop();
    await config?.close();
    await bus.close();
    port.close();
  };
  port.on('message', (message: ToWorker) => {
    switch (message.type) {
      case 'drain':
        void router.drain(message.waitMs, message.timeoutMs).then(
          () => post({ type: 'drained' }),
          () => post({ type: 'drained' }),
        );
        return;
      case 'force':
        router.drainer.force();
        return;
      case 'reopen-log':
        router.reopenAccessLog();
        return;
      case 'stop':
        void stop();
        return;
      case 'routes':
        return;
    }
  });
}

if (parentPort !== null) {
  const port = parentPort;
  runWorker(port, workerData as WorkerData).catch((error: unknown) => {
    port.postMessage({ type: 'failed', message: (error as Error).message } satisfies FromWorker);
    port.close();
  });
}
