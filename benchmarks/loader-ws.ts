// The ws-echo load generator: worker threads (ws-echo-worker.ts) sharing the
// connections, driven from here. A session opens its connections once, then
// runs phases (warm-up, measurement) on them, so that proxy CPU can be read
// around the measurement alone.

import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { BENCH_HOST } from './cases';
import { LatencyHistogram } from './latency';
import type { Measurement } from './loader';
import type { EchoOpened, EchoResult, EchoWorkerData } from './ws-echo-worker';

export interface WsEchoSpec {
  port: number;
  path: string;
  connections: number;
  messageBytes: number;
  threads: number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

class WorkerHandle {
  private pending: Pending | null = null;
  private dead: Error | null = null;

  constructor(readonly worker: Worker) {
    worker.on('message', (m: unknown) => {
      const p = this.pending;
      this.pending = null;
      p?.resolve(m);
    });
    const die = (e: Error): void => {
      this.dead = e;
      const p = this.pending;
      this.pending = null;
      p?.reject(e);
    };
    worker.on('error', (e) => die(e));
    worker.on('exit', (code) => die(new Error(`ws loader thread exited (code ${code})`)));
  }

  /** Next message from the worker, after optionally posting one; bounded by timeoutMs. */
  next<T>(post: unknown, timeoutMs: number): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = null;
        reject(new Error(`ws loader thread did not answer within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.pending = {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      if (post !== undefined) this.worker.postMessage(post);
    });
  }
}

export class WsEchoSession {
  private constructor(
    private readonly spec: WsEchoSpec,
    private readonly workers: WorkerHandle[],
    readonly opened: EchoOpened,
  ) {}

  /** Starts the threads and opens every connection; throws if none opens. */
  static async open(spec: WsEchoSpec): Promise<WsEchoSession> {
    const threads = Math.max(1, Math.min(spec.threads, spec.connections));
    const handles: WorkerHandle[] = [];
    const firsts: Promise<EchoOpened>[] = [];
    for (let i = 0; i < threads; i++) {
      // Spread the connections evenly (100 over 3 threads: 34, 33, 33).
      const share = Math.floor(spec.connections / threads) + (i < spec.connections % threads ? 1 : 0);
      const data: EchoWorkerData = { port: spec.port, path: spec.path, hostHeader: BENCH_HOST, connections: share, messageBytes: spec.messageBytes };
      const h = new WorkerHandle(new Worker(path.join(__dirname, 'ws-echo-worker.js'), { workerData: data }));
      handles.push(h);
      firsts.push(h.next<EchoOpened>(undefined, 30000));
    }
    const session = new WsEchoSession(spec, handles, { type: 'opened', open: 0, rejected: 0, failed: 0 });
    let results: EchoOpened[];
    try {
      results = await Promise.all(firsts);
    } catch (err) {
      await session.terminate();
      throw err;
    }
    const o = session.opened;
    for (const r of results) {
      o.open += r.open;
      o.rejected += r.rejected;
      o.failed += r.failed;
      o.firstError ??= r.firstError;
    }
    if (o.open === 0) {
      await session.terminate();
      throw new Error(`no WebSocket opened (${o.rejected} rejected, ${o.failed} failed): ${o.firstError ?? 'unknown'}`);
    }
    return session;
  }

  /** One phase of durationS on the open connections. */
  async run(durationS: number): Promise<Measurement> {
    const cpu0 = process.cpuUsage();
    const results = await Promise.all(this.workers.map((w) => w.next<EchoResult>({ type: 'run', durationS }, (durationS + 30) * 1000)));
    const cpu = process.cpuUsage(cpu0);
    const hist = new LatencyHistogram();
    let messages = 0;
    let messagesTotal = 0;
    let rps = 0;
    let durationMax = 0;
    let closed = 0;
    let mismatches = 0;
    let timeouts = 0;
    let unexpected = 0;
    let active = 0;
    let firstError: string | undefined;
    for (const r of results) {
      hist.addCounts(r.hist);
      messages += r.messages;
      messagesTotal += r.messagesTotal;
      if (r.durationS > 0) rps += r.messages / r.durationS;
      durationMax = Math.max(durationMax, r.durationS);
      closed += r.closed;
      mismatches += r.mismatches;
      timeouts += r.timeouts;
      unexpected += r.unexpected;
      active += r.active;
      firstError ??= r.firstError;
    }
    const loaderCpuS = (cpu.user + cpu.system) / 1e6;
    const o = this.opened;
    return {
      requests: messages,
      cpuOps: messagesTotal,
      durationS: durationMax,
      rps,
      p50ms: hist.percentile(50),
      p99ms: hist.percentile(99),
      non2xx: o.rejected,
      errors: o.failed + closed + mismatches + timeouts + unexpected,
      detail: {
        ws: {
          connectionsWanted: this.spec.connections,
          connectionsOpen: o.open,
          connectionsActiveAtStart: active,
          handshakesRejected: o.rejected,
          handshakesFailed: o.failed,
          messageBytes: this.spec.messageBytes,
          messagesInWindow: messages,
          messagesIncludingDrain: messagesTotal,
          closedDuringRun: closed,
          mismatches,
          timeouts,
          unexpected,
          ...(firstError || o.firstError ? { firstError: firstError ?? o.firstError } : {}),
        },
        loaderThreads: this.workers.length,
        loaderThreadElu: results.map((r) => Number(r.elu.toFixed(3))),
        loaderCpuS,
        loaderCpuShareOfOneCore: durationMax > 0 ? loaderCpuS / durationMax : undefined,
      },
    };
  }

  /** Closes every connection (close handshake), then ends the threads. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.next<unknown>({ type: 'close' }, 10000).catch(() => undefined)));
    await this.terminate();
  }

  private async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate().catch(() => 0)));
  }
}
