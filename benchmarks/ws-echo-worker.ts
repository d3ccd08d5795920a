// Worker thread of the ws-echo load generator (started by loader-ws.ts).
// Owns a share of the connections; each connection keeps exactly one message
// in flight: send, await the echo, record the round trip, send the next.
//
// Messages from the parent: {type:'run', durationS} -> {type:'result', ...};
// {type:'close'} -> {type:'closed'}. On start it opens its connections and
// posts {type:'opened', ...}.

import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { LatencyHistogram } from './latency';
import { clientFrame, HandshakeError, OP_TEXT, RawWs } from './ws-client';

export interface EchoWorkerData {
  port: number;
  path: string;
  hostHeader: string;
  connections: number;
  messageBytes: number;
}

export interface EchoOpened {
  type: 'opened';
  open: number;
  /** Handshakes answered with a status other than 101. */
  rejected: number;
  /** Connect errors, timeouts, bad handshakes. */
  failed: number;
  firstError?: string;
}

export interface EchoResult {
  type: 'result';
  /** Round trips completed inside the window. */
  messages: number;
  /** Including those that completed while draining after the window. */
  messagesTotal: number;
  durationS: number;
  /** Connections that closed or failed during the run. */
  closed: number;
  /** Echoes that did not match what was sent. */
  mismatches: number;
  /** Messages still unanswered 2 s after the window. */
  timeouts: number;
  /** Messages nobody asked for. */
  unexpected: number;
  /** Connections usable at the start of the run. */
  active: number;
  /** Share of wall time this thread's event loop was busy (1.0: saturated). */
  elu: number;
  firstError?: string;
  hist: Uint32Array;
}

const port = parentPort;
if (!port) throw new Error('ws-echo-worker must run as a worker thread');
const d = workerData as EchoWorkerData;

// Printable, deterministic payload: valid UTF-8 for a text frame.
const PAYLOAD = Buffer.alloc(d.messageBytes);
for (let i = 0; i < PAYLOAD.length; i++) PAYLOAD[i] = 0x61 + (i % 26);
const FRAME = clientFrame(OP_TEXT, PAYLOAD);
const readBuffer = Buffer.allocUnsafe(64 * 1024);

const conns: RawWs[] = [];
let hist = new LatencyHistogram();
let running = false;
let endAt = 0;
let inFlight = 0;
let messages = 0;
let messagesTotal = 0;
let closed = 0;
let mismatches = 0;
let unexpected = 0;
let firstError: string | undefined;
let finish: (() => void) | null = null;

function send(c: RawWs): void {
  c.inFlight = true;
  inFlight++;
  c.sentAt = performance.now();
  c.send(FRAME);
}

const handlers = {
  onMessage(c: RawWs, data: Buffer): void {
    const now = performance.now();
    if (!c.inFlight) {
      unexpected++;
      return;
    }
    c.inFlight = false;
    inFlight--;
    if (data.length !== PAYLOAD.length || PAYLOAD.compare(data) !== 0) mismatches++;
    messagesTotal++;
    if (now <= endAt) {
      messages++;
      hist.record(now - c.sentAt);
      if (running) {
        send(c);
        return;
      }
    }
    if (inFlight === 0 && finish) finish();
  },
  onClose(c: RawWs, reason: string, expected: boolean): void {
    if (expected) return;
    closed++;
    firstError ??= reason;
    if (c.inFlight) {
      c.inFlight = false;
      inFlight--;
      if (inFlight === 0 && finish) finish();
    }
  },
};

async function openAll(): Promise<EchoOpened> {
  let rejected = 0;
  let failed = 0;
  let err: string | undefined;
  await Promise.all(
    Array.from({ length: d.connections }, async () => {
      try {
        conns.push(await RawWs.open({ port: d.port, path: d.path, hostHeader: d.hostHeader, readBuffer, handlers, handshakeTimeoutMs: 10000 }));
      } catch (e) {
        if (e instanceof HandshakeError && e.status !== undefined && e.status !== 101) rejected++;
        else failed++;
        err ??= (e as Error).message;
      }
    }),
  );
  return { type: 'opened', open: conns.length, rejected, failed, ...(err ? { firstError: err } : {}) };
}

function run(durationS: number): Promise<EchoResult> {
  hist = new LatencyHistogram();
  messages = 0;
  messagesTotal = 0;
  closed = 0;
  mismatches = 0;
  unexpected = 0;
  firstError = undefined;
  const usable = conns.filter((c) => c.state === 'open' && !c.stalled && !c.inFlight);
  return new Promise<EchoResult>((resolve) => {
    const elu0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    endAt = t0 + durationS * 1000;
    running = true;
    let force: NodeJS.Timeout | undefined;
    finish = (): void => {
      if (running || !finish) return;
      finish = null;
      if (force) clearTimeout(force);
      let timeouts = 0;
      for (const c of usable) {
        if (c.inFlight) {
          // Its echo never came: leave it out of later runs.
          c.stalled = true;
          c.inFlight = false;
          timeouts++;
        }
      }
      inFlight = 0;
      const elu = performance.eventLoopUtilization(elu0).utilization;
      resolve({
        type: 'result',
        messages,
        messagesTotal,
        durationS: (endAt - t0) / 1000,
        closed,
        mismatches,
        timeouts,
        unexpected,
        active: usable.length,
        elu,
        ...(firstError ? { firstError } : {}),
        hist: hist.rawCounts(),
      });
    };
    setTimeout(() => {
      running = false;
      if (inFlight === 0) finish?.();
      else force = setTimeout(() => finish?.(), 2000);
    }, durationS * 1000);
    for (const c of usable) send(c);
  });
}

function closeAll(): Promise<void> {
  return new Promise((resolve) => {
    let left = 0;
    for (const c of conns) {
      if (c.state === 'closed') continue;
      left++;
      c.socket.once('close', () => {
        if (--left === 0) resolve();
      });
      c.close(2000);
    }
    if (left === 0) resolve();
    // Backstop: close() destroys after 2 s anyway.
    setTimeout(resolve, 3000).unref();
  });
}

port.on('message', (msg: { type: string; durationS?: number }) => {
  if (msg.type === 'run') {
    void run(msg.durationS ?? 1).then((r) => port.postMessage(r, [r.hist.buffer as ArrayBuffer]));
  } else if (msg.type === 'close') {
    void closeAll().then(() => port.postMessage({ type: 'closed' }));
  }
});

void openAll().then((o) => port.postMessage(o));
