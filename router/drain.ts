import type { Logger } from '../bus/log';

/** What the drain acts on; router.ts implements it over uWS, the proxy and the WebSocket module. */
export interface DrainTarget {
  /** /health and /healthz answer 503 from now on. */
  markUnhealthy(): void;
  /** Closes the listen socket (new connections are refused); responses from now on close their connection. */
  stopAccepting(): void;
  /** HTTP requests received and not yet answered. */
  inFlight(): number;
  /** WebSockets still open (0 without the WebSocket module). */
  openWebSockets(): number;
  /** Sends every open WebSocket a close frame with this code. */
  closeWebSockets(code: number, reason: string): void;
  /** Closes every client connection still open: the idle keep-alive ones, and after a timeout whatever is left. */
  closeConnections(): void;
}

export interface DrainResult {
  /** The drain timeout expired: this many requests and WebSockets were cut. */
  timedOut: boolean;
  cut: number;
  ms: number;
}

/** WebSocket close code 1001: the endpoint is going away (RFC 6455 7.4.1). */
export const GOING_AWAY = 1001;
const POLL_MS = 25;
const PROGRESS_LOG_MS = 5000;

/**
 * gorouter's drain, over uWebSockets.js:
 * 1. health 503 at once, so load balancers stop sending;
 * 2. after `waitMs` (--drain-wait; 0 for SIGTERM) stop accepting: close the
 *    listen socket; WebSockets get close code 1001; responses from now on
 *    carry `Connection: close`;
 * 3. wait until no request is in flight, at most `timeoutMs` (--drain-timeout);
 * 4. close the client connections left (idle keep-alive ones; after a timeout,
 *    also the requests still running).
 * uWS 20.30 has no per-connection hook, so idle keep-alive connections cannot
 * be told apart while requests are in flight: they are closed in step 4, or
 * earlier by uWS's own 10 s idle timeout, and any request one of them still
 * carries meanwhile is answered with `Connection: close`.
 */
export class Drainer {
  private running: Promise<DrainResult> | null = null;
  private endWait: (() => void) | null = null;
  private forced = false;
  phase: 'serving' | 'waiting' | 'draining' | 'done' = 'serving';

  constructor(
    private readonly target: DrainTarget,
    private readonly log: Logger,
  ) {}

  get draining(): boolean {
    return this.phase !== 'serving';
  }

  /**
   * Starts a drain, or joins the one running; a call with waitMs 0 (SIGTERM
   * during a SIGUSR1 drain) cuts the remaining wait short.
   */
  drain(waitMs: number, timeoutMs: number): Promise<DrainResult> {
    if (this.running !== null) {
      if (waitMs === 0) this.endWait?.();
      return this.running;
    }
    this.running = this.run(waitMs, timeoutMs);
    return this.running;
  }

  /** Give up on in-flight requests now (a second Ctrl-C). */
  force(): void {
    this.forced = true;
    this.endWait?.();
  }

  private async run(waitMs: number, timeoutMs: number): Promise<DrainResult> {
    const started = Date.now();
    const target = this.target;
    this.phase = 'waiting';
    target.markUnhealthy();
    this.log.info('draining: health checks answer 503', { wait_s: waitMs / 1000, timeout_s: timeoutMs / 1000 });
    if (waitMs > 0 && !this.forced) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.endWait = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.endWait = null;
    }

    this.phase = 'draining';
    target.stopAccepting();
    const webSockets = target.openWebSockets();
    this.log.info('draining: stopped accepting connections', { in_flight: target.inFlight(), websockets: webSockets });
    if (webSockets > 0) target.closeWebSockets(GOING_AWAY, 'router shutting down');

    const deadline = Date.now() + timeoutMs;
    let nextProgress = Date.now() + PROGRESS_LOG_MS;
    let timedOut = false;
    // Clamped: a miscount elsewhere (a response counted twice) must not hold the drain to its timeout.
    const inFlight = () => Math.max(0, target.inFlight());
    for (;;) {
      const left = inFlight() + target.openWebSockets();
      if (left === 0) break;
      const now = Date.now();
      if (this.forced || now >= deadline) {
        timedOut = true;
        break;
      }
      if (now >= nextProgress) {
        this.log.info('draining: waiting for in-flight requests', { in_flight: inFlight(), websockets: target.openWebSockets() });
        nextProgress = now + PROGRESS_LOG_MS;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(POLL_MS, deadline - now));
        this.endWait = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.endWait = null;
    }
    const cut = timedOut ? inFlight() + target.openWebSockets() : 0;
    target.closeConnections();
    this.phase = 'done';
    const ms = Date.now() - started;
    if (timedOut) this.log.warn('drain timed out, cutting what is left', { cut, ms });
    else this.log.info('drained', { ms });
    return { timedOut, cut, ms };
  }
}
