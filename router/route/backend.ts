/**
 * One app instance address (`host:port`). Shared by every route that lists it,
 * so connection counts, the failure cool-down and the keep-alive sockets are
 * per backend, as an app instance experiences them.
 */
export class Backend {
  readonly key: string;
  /** Requests currently holding a connection to this backend. */
  inFlight = 0;
  /** Epoch ms of the last failed connection attempt; 0 while healthy. */
  failedAt = 0;
  /** Endpoints (route registrations) that reference this backend. */
  refs = 0;
  /** Idle keep-alive connections; owned by the upstream client. */
  readonly idle: unknown[] = [];
  /** The connection that pipelined requests to this backend join; owned by the upstream client. */
  batch: unknown = null;
  /**
   * Epoch ms until which requests to this backend are not pipelined (a
   * pipeline stalled); Infinity once the app closed connections on pipelined
   * requests. Owned by the upstream client.
   */
  pipelineOffUntil = 0;
  /**
   * Responses of this backend are large on average lately: not pipelined
   * (a pipeline of large responses costs the app and the router more than
   * the writes and reads it saves). Owned by the upstream client, as are the
   * byte and response counts of the current measuring window.
   */
  largeResponses = false;
  windowBytes = 0;
  windowResponses = 0;

  constructor(
    readonly host: string,
    readonly port: number,
  ) {
    this.key = backendKey(host, port);
  }

  isCoolingDown(now: number, coolDownMs: number): boolean {
    return this.failedAt !== 0 && now - this.failedAt < coolDownMs;
  }
}

export function backendKey(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}
