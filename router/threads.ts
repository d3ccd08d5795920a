import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { RouterRegister } from '../bus/messages';
import type { Logger } from '../bus/log';
import type { ThreadFigures } from './router';
import type { NatsAuth } from '../bus/nats-options';

// `--threads N`: the first thread (main.ts) runs a full router; N-1 worker
// threads (worker.ts) each run another on the same port. The kernel spreads
// new connections over the listen sockets (uSockets sets SO_REUSEPORT), and
// each thread keeps its own routing table from its own NATS subscription, so
// no request ever waits on another thread. The first thread alone serves the
// status port and adds the workers' figures into /varz and /metrics.

/** First thread -> worker. */
export type ToWorker =
  | { type: 'drain'; waitMs: number; timeoutMs: number }
  | { type: 'force' }
  | { type: 'reopen-log' }
  | { type: 'stop' }
  /** The first thread's routing table, sent once the worker has subscribed (so no update falls between). */
  | { type: 'routes'; registrations: RouterRegister[] };

/** Worker -> first thread. */
export type FromWorker =
  | { type: 'subscribed' }
  | { type: 'ready'; port: number }
  | { type: 'figures'; figures: ThreadFigures }
  | { type: 'drained' }
  | { type: 'failed'; message: string };

export interface WorkerData {
  argv: string[];
  thread: number;
  /** The port the first thread listens on (it resolves --port 0). */
  port: number;
  /** Same credentials on every thread, so component messages agree. */
  statusUser: string;
  statusPassword: string;
  /** Read once by the first thread: the environment that held them is cleared by then. */
  nats: string;
  natsAuth: NatsAuth | undefined;
}

export const FIGURES_INTERVAL_MS = 1000;

class RouterThread {
  figures: ThreadFigures | null = null;
  private drainedWaiter: (() => void) | null = null;
  readonly exited: Promise<void>;

  constructor(
    readonly worker: Worker,
    readonly thread: number,
    routes: () => RouterRegister[],
    log: Logger,
  ) {
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'figures') this.figures = message.figures;
      else if (message.type === 'drained') this.drainedWaiter?.();
      else if (message.type === 'subscribed') this.send({ type: 'routes', registrations: routes() });
    });
    worker.on('error', (error) => log.error('router thread failed', { thread, error: error.message }));
  }

  send(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  drain(waitMs: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      this.drainedWaiter = resolve;
      void this.exited.then(resolve);
      this.send({ type: 'drain', waitMs, timeoutMs });
    });
  }
}

export class ThreadPool {
  private constructor(private readonly threads: RouterThread[]) {}

  /** Starts `count` worker threads and resolves once each listens (rejects if one cannot). */
  static async start(
    count: number,
    data: Omit<WorkerData, 'thread'>,
    routes: () => RouterRegister[],
    log: Logger,
  ): Promise<ThreadPool> {
    const threads: RouterThread[] = [];
    const started: Array<Promise<void>> = [];
    for (let i = 1; i <= count; i++) {
      const workerData: WorkerData = { ...data, thread: i };
      const worker = new Worker(path.join(__dirname, 'worker.js'), { workerData });
      const thread = new RouterThread(worker, i, routes, log);
      threads.push(thread);
      started.push(
        new Promise<void>((resolve, reject) => {
          const onMessage = (message: FromWorker): void => {
            if (message.type === 'ready') {
              worker.off('message', onMessage);
              resolve();
            } else if (message.type === 'failed') {
              reject(new Error(`router thread ${i}: ${message.message}`));
            }
          };
          worker.on('message', onMessage);
          void thread.exited.then(() => reject(new Error(`router thread ${i} exited while starting`)));
        }),
      );
    }
    const pool = new ThreadPool(threads);
    try {
      await Promise.all(started);
    } catch (error) {
      await pool.stop();
      throw error;
    }
    return pool;
  }

  get size(): number {
    return this.threads.length;
  }

  /** The latest figures of every worker thread (about a second old at most). */
  figures(): ThreadFigures[] {
    const all: ThreadFigures[] = [];
    for (const thread of this.threads) if (thread.figures !== null) all.push(thread.figures);
    return all;
  }

  drain(waitMs: number, timeoutMs: number): Promise<void> {
    return Promise.all(this.threads.map((t) => t.drain(waitMs, timeoutMs))).then(() => undefined);
  }

  force(): void {
    for (const thread of this.threads) thread.send({ type: 'force' });
  }

  reopenAccessLogs(): void {
    for (const thread of this.threads) thread.send({ type: 'reopen-log' });
  }

  /**
   * Asks each worker to close everything and waits for it to end. A worker
   * must end by itself: terminating one with uWS sockets still open aborts
   * the whole process in Node 20 (uv_loop_close with open handles).
   */
  async stop(): Promise<void> {
    for (const thread of this.threads) thread.send({ type: 'stop' });
    await Promise.all(this.threads.map((t) => t.exited));
  }
}
