import type { Logger } from '../../bus/log';

interface BackendFailures {
  lastLoggedAt: number;
  suppressed: number;
}

/**
 * Logs failed backend requests at most once per backend per interval, with
 * the count of the ones not logged: an app that is down under load must not
 * turn every request into a synchronous log write.
 */
export class FailureLog {
  private readonly byBackend = new Map<string, BackendFailures>();

  constructor(
    private readonly log: Logger,
    private readonly message = 'backend request failed',
    private readonly intervalMs = 5000,
  ) {}

  failed(backend: string, host: string, attempts: number, reason: string, now = Date.now()): void {
    let entry = this.byBackend.get(backend);
    if (entry === undefined) {
      if (this.byBackend.size > 10_000) this.byBackend.clear();
      entry = { lastLoggedAt: -Infinity, suppressed: 0 };
      this.byBackend.set(backend, entry);
    }
    if (now - entry.lastLoggedAt < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    this.log.warn(this.message, {
      backend,
      host,
      attempts,
      reason,
      suppressed: entry.suppressed > 0 ? entry.suppressed : undefined,
    });
    entry.lastLoggedAt = now;
    entry.suppressed = 0;
  }
}
