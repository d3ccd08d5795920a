// The ws-idle case: open N WebSockets through a proxy and leave them idle,
// read the proxy's RSS before and after, check a sample still echoes, close
// everything. Bounded in time; runs in the harness thread (idle sockets cost
// it nothing but memory).

import { performance } from 'node:perf_hooks';
import { fdSum, rssBytes, rssSum } from './mem';
import { sleep } from './procs';
import { BENCH_HOST } from './cases';
import { clientFrame, HandshakeError, OP_TEXT, RawWs } from './ws-client';

export interface IdleSpec {
  port: number;
  path: string;
  connections: number;
  /** Seconds to wait after opening before reading RSS (and after closing). */
  settleS: number;
  /** Upper bound for opening all connections. */
  openTimeoutS: number;
  /** Handshakes in flight at once. */
  concurrency: number;
  /** Processes whose RSS is the proxy's (re-read at each sample). */
  proxyPids: () => number[];
  backendPid: number;
  log: (s: string) => void;
}

export interface IdleMeasurement {
  connectionsWanted: number;
  opened: number;
  /** Handshakes answered with a status other than 101. */
  rejected: number;
  /** Connect errors, timeouts, bad handshakes. */
  failed: number;
  openS: number;
  /** Source addresses used: 127.0.0.1 (unbound) first, then 127.0.0.2, ... when ports ran out. */
  sourceAddresses: string[];
  proxyRssBeforeBytes?: number;
  proxyRssAfterBytes?: number;
  proxyRssAfterCloseBytes?: number;
  /** (after - before) / opened, in KiB. */
  kbPerConnection?: number;
  proxyFdsBefore?: number;
  proxyFdsAfter?: number;
  backendRssBeforeBytes?: number;
  backendRssAfterBytes?: number;
  backendKbPerConnection?: number;
  /** Connections that went away on their own while idle. */
  closedWhileIdle: number;
  /** A sample of the idle connections sent one message each afterwards. */
  probe: { tried: number; echoed: number };
  /** Connections that did not finish the close handshake within the grace time. */
  closeTimeouts: number;
  firstError?: string;
  errors: number;
}

const MAX_SOURCE_ADDRESSES = 50;
const sourceAddress = (i: number): string | undefined => (i === 0 ? undefined : `127.0.0.${i + 1}`);

export async function measureIdle(spec: IdleSpec): Promise<IdleMeasurement> {
  const readBuffer = Buffer.allocUnsafe(64 * 1024);
  const payload = Buffer.from('idle-probe-'.repeat(6).slice(0, 64));
  const probeFrame = clientFrame(OP_TEXT, payload);
  const probeWaiters = new Map<RawWs, () => void>();
  let closedWhileIdle = 0;
  let firstError: string | undefined;
  let holding = true;
  const handlers = {
    onMessage(c: RawWs, data: Buffer): void {
      const w = probeWaiters.get(c);
      if (w && data.equals(payload)) {
        probeWaiters.delete(c);
        w();
      }
    },
    onClose(_c: RawWs, reason: string, expected: boolean): void {
      if (expected || !holding) return;
      closedWhileIdle++;
      firstError ??= `idle connection lost: ${reason}`;
    },
  };

  const sampleProxy = (): { rss?: number; fds?: number } => {
    const pids = spec.proxyPids();
    const rss = rssSum(pids);
    const fds = fdSum(pids);
    return { ...(rss !== undefined ? { rss } : {}), ...(fds !== undefined ? { fds } : {}) };
  };

  await sleep(1000);
  const before = sampleProxy();
  const backendBefore = rssBytes(spec.backendPid);

  // Open.
  const conns: RawWs[] = [];
  let next = 0;
  let src = 0;
  let rejected = 0;
  let failed = 0;
  let abort = false;
  const maxFailures = Math.max(20, Math.ceil(spec.connections / 100));
  const t0 = performance.now();
  const deadline = Date.now() + spec.openTimeoutS * 1000;
  let lastLog = Date.now();
  const opener = async (): Promise<void> => {
    while (next < spec.connections && !abort) {
      if (Date.now() > deadline) {
        abort = true;
        firstError ??= `opening stopped after ${spec.openTimeoutS} s`;
        break;
      }
      next++;
      for (;;) {
        const mySrc = src;
        try {
          const localAddress = sourceAddress(mySrc);
          conns.push(
            await RawWs.open({
              port: spec.port,
              path: spec.path,
              hostHeader: BENCH_HOST,
              readBuffer,
              handlers,
              handshakeTimeoutMs: 15000,
              ...(localAddress ? { localAddress } : {}),
            }),
          );
        } catch (e) {
          const err = e as HandshakeError;
          if ((err.code === 'EADDRNOTAVAIL' || err.code === 'EADDRINUSE') && mySrc + 1 < MAX_SOURCE_ADDRESSES) {
            // Out of ephemeral ports for this source address: move to the next one.
            if (src === mySrc) {
              src = mySrc + 1;
              spec.log(`  ws-idle: ${err.code} after ${conns.length} connections; now connecting from 127.0.0.${src + 1}`);
            }
            continue;
          }
          if (err.status !== undefined && err.status !== 101) rejected++;
          else failed++;
          firstError ??= err.message;
          if (rejected + failed >= maxFailures && !abort) {
            abort = true;
            firstError = `gave up after ${rejected + failed} failed handshakes: ${firstError}`;
          }
        }
        break;
      }
      if (Date.now() - lastLog > 5000) {
        lastLog = Date.now();
        spec.log(`  ws-idle: ${conns.length} open...`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(spec.concurrency, spec.connections) }, opener));
  const openS = (performance.now() - t0) / 1000;

  await sleep(spec.settleS * 1000);
  const after = sampleProxy();
  const backendAfter = rssBytes(spec.backendPid);

  // Are they still proxied end to end? One message on an evenly spread sample.
  const sample: RawWs[] = [];
  const open = conns.filter((c) => c.state === 'open');
  const want = Math.min(100, open.length);
  for (let i = 0; i < want; i++) {
    const c = open[Math.floor((i * open.length) / want)];
    if (c) sample.push(c);
  }
  let echoed = 0;
  await Promise.all(
    sample.map(
      (c) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            probeWaiters.delete(c);
            resolve();
          }, 5000);
          probeWaiters.set(c, () => {
            clearTimeout(timer);
            echoed++;
            resolve();
          });
          c.send(probeFrame);
        }),
    ),
  );
  if (echoed < sample.length) firstError ??= `${sample.length - echoed} of ${sample.length} sampled connections did not echo`;

  // Close everything: close handshakes, FIN, destroy after the grace time.
  holding = false;
  let closeTimeouts = 0;
  await Promise.all(
    conns.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.socket.destroyed) {
            resolve();
            return;
          }
          const timer = setTimeout(() => {
            closeTimeouts++;
            c.destroy();
            resolve();
          }, 10000);
          c.socket.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          c.close(10000);
        }),
    ),
  );
  await sleep(spec.settleS * 1000);
  const closed = sampleProxy();

  const opened = conns.length;
  const kb = (a?: number, b?: number): number | undefined => (a !== undefined && b !== undefined && opened > 0 ? (b - a) / 1024 / opened : undefined);
  return {
    connectionsWanted: spec.connections,
    opened,
    rejected,
    failed,
    openS,
    sourceAddresses: Array.from({ length: src + 1 }, (_, i) => sourceAddress(i) ?? '127.0.0.1'),
    ...(before.rss !== undefined ? { proxyRssBeforeBytes: before.rss } : {}),
    ...(after.rss !== undefined ? { proxyRssAfterBytes: after.rss } : {}),
    ...(closed.rss !== undefined ? { proxyRssAfterCloseBytes: closed.rss } : {}),
    ...(kb(before.rss, after.rss) !== undefined ? { kbPerConnection: kb(before.rss, after.rss) } : {}),
    ...(before.fds !== undefined ? { proxyFdsBefore: before.fds } : {}),
    ...(after.fds !== undefined ? { proxyFdsAfter: after.fds } : {}),
    ...(backendBefore !== undefined ? { backendRssBeforeBytes: backendBefore } : {}),
    ...(backendAfter !== undefined ? { backendRssAfterBytes: backendAfter } : {}),
    ...(kb(backendBefore, backendAfter) !== undefined ? { backendKbPerConnection: kb(backendBefore, backendAfter) } : {}),
    closedWhileIdle,
    probe: { tried: sample.length, echoed },
    closeTimeouts,
    ...(firstError ? { firstError } : {}),
    errors: rejected + failed + closedWhileIdle + (sample.length - echoed),
  };
}
