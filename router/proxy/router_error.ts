import type { HttpResponse } from 'uWebSockets.js';

/** Errors the router itself answers, with gorouter's X-Cf-Routererror values. */
export enum RouterErrorKind {
  UnknownRoute,
  EmptyHost,
  InvalidAppInstanceHeader,
  UnknownInstance,
  NoEndpoints,
  ConnectionLimit,
  EndpointFailure,
  EndpointTimeout,
  BadRequest,
  HeadersTooLarge,
  PayloadTooLarge,
}

interface RouterErrorSpec {
  statusLine: string;
  status: number;
  routerError: string | undefined;
  message: (host: string) => string;
  /** The connection ends with this response (no keep-alive). */
  closesConnection?: boolean;
  /**
   * The connection is cut at once, unanswered (uWebSockets.js drops it after
   * the handler whatever the answer).
   */
  abortsConnection?: boolean;
  /**
   * The request's framing cannot be trusted (RFC 9112 6.3), so the connection
   * must end with this answer. uWebSockets.js 20.30 goes on parsing the rest
   * of a read as further requests even after end(body, true), and close()
   * discards an answer written in the same handler. The answer therefore
   * waits until the read is parsed: if more bytes followed the request in it,
   * uWS has already closed the connection unanswered (a response was owed),
   * and nothing after the request was ever read as a request.
   */
  answersAfterRead?: boolean;
}

const SPECS: Record<RouterErrorKind, RouterErrorSpec> = {
  [RouterErrorKind.UnknownRoute]: {
    statusLine: '404 Not Found',
    status: 404,
    routerError: 'unknown_route',
    message: (host) => `Requested route ('${host}') does not exist.`,
  },
  [RouterErrorKind.EmptyHost]: {
    statusLine: '400 Bad Request',
    status: 400,
    routerError: 'empty_host',
    message: () => 'Request had empty Host header.',
  },
  [RouterErrorKind.InvalidAppInstanceHeader]: {
    statusLine: '400 Bad Request',
    status: 400,
    routerError: 'invalid_cf_app_instance_header',
    message: () => 'Invalid X-CF-App-Instance Header: expected <app-id>:<index>.',
  },
  [RouterErrorKind.UnknownInstance]: {
    statusLine: '400 Bad Request',
    status: 400,
    routerError: 'unknown_route',
    message: (host) => `Requested instance in X-CF-App-Instance does not exist for route ('${host}').`,
  },
  [RouterErrorKind.NoEndpoints]: {
    statusLine: '503 Service Unavailable',
    status: 503,
    routerError: 'no_endpoints',
    message: (host) => `Requested route ('${host}') has no available endpoints.`,
  },
  [RouterErrorKind.ConnectionLimit]: {
    statusLine: '503 Service Unavailable',
    status: 503,
    routerError: 'Connection Limit Reached',
    message: (host) => `Requested route ('${host}') has reached the connection limit.`,
  },
  [RouterErrorKind.EndpointFailure]: {
    statusLine: '502 Bad Gateway',
    status: 502,
    routerError: 'endpoint_failure',
    message: () => 'Registered endpoint failed to handle the request.',
  },
  [RouterErrorKind.EndpointTimeout]: {
    statusLine: '504 Gateway Timeout',
    status: 504,
    routerError: 'endpoint_failure',
    message: () => 'Registered endpoint did not respond in time.',
  },
  [RouterErrorKind.BadRequest]: {
    statusLine: '400 Bad Request',
    status: 400,
    routerError: undefined,
    message: () => 'Bad Request.',
    closesConnection: true,
    answersAfterRead: true,
  },
  [RouterErrorKind.HeadersTooLarge]: {
    statusLine: '431 Request Header Fields Too Large',
    status: 431,
    routerError: undefined,
    message: () => 'Request header fields too large.',
    // The head was read whole, so the connection is still in step; closing
    // right after would race the client's last writes into a reset that
    // can swallow this answer.
  },
  [RouterErrorKind.PayloadTooLarge]: {
    statusLine: '413 Payload Too Large',
    status: 413,
    routerError: undefined,
    message: () =>
      'Bodies of 1,000,000,000 bytes or more must be sent with Transfer-Encoding: chunked (a limit of the HTTP server library).',
    // uWebSockets.js drops the connection right after this handler, answered or not.
    abortsConnection: true,
  },
};

export function routerErrorStatus(kind: RouterErrorKind): number {
  return SPECS[kind].status;
}

export function routerErrorCode(kind: RouterErrorKind): string | undefined {
  return SPECS[kind].routerError;
}

/** Body bytes writeRouterError sends for this error (for the access log). */
export function routerErrorBodyBytes(kind: RouterErrorKind, host: string, headOnly: boolean): number {
  const spec = SPECS[kind];
  if (spec.abortsConnection || (headOnly && !spec.closesConnection)) return 0;
  return Buffer.byteLength(`${spec.statusLine}: ${spec.message(host)}\n`);
}

/**
 * Writes the router's own error response. The caller corks when outside the
 * uWS request handler.
 */
export function writeRouterError(
  res: HttpResponse,
  kind: RouterErrorKind,
  host: string,
  headOnly: boolean,
  /** The router is draining: the client must not send another request on this connection. */
  closeConnection = false,
): number {
  const spec = SPECS[kind];
  if (spec.abortsConnection) {
    res.close();
    return spec.status;
  }
  if (spec.answersAfterRead) {
    new AnswerAfterRead(res, kind, host);
    return spec.status;
  }
  writeError(res, kind, spec, host, headOnly, closeConnection);
  return spec.status;
}

function writeError(res: HttpResponse, kind: RouterErrorKind, spec: RouterErrorSpec, host: string, headOnly: boolean, closeConnection = false): void {
  res.writeStatus(spec.statusLine);
  if (spec.routerError !== undefined) res.writeHeader('X-Cf-Routererror', spec.routerError);
  if (kind === RouterErrorKind.UnknownRoute) res.writeHeader('Cache-Control', 'public,max-age=2');
  res.writeHeader('Content-Type', 'text/plain; charset=utf-8');
  const body = `${spec.statusLine}: ${spec.message(host)}\n`;
  if (spec.closesConnection) {
    // The connection ends with this response, so a body after a HEAD cannot be misread.
    res.end(body, true);
  } else if (headOnly) {
    res.writeHeader('Content-Length', String(Buffer.byteLength(body)));
    // endWithoutBody's own arguments misbehave in uWS 20.30 (uws-notes): the header says it instead.
    if (closeConnection) res.writeHeader('Connection', 'close');
    res.endWithoutBody();
  } else {
    res.end(body, closeConnection);
  }
}

/** A rare path (malformed requests), so it may allocate. */
class AnswerAfterRead {
  private aborted = false;

  constructor(
    private readonly res: HttpResponse,
    private readonly kind: RouterErrorKind,
    private readonly host: string,
  ) {
    res.onAborted(() => {
      this.aborted = true;
    });
    setImmediate(() => this.answer());
  }

  private answer(): void {
    if (this.aborted) return;
    this.res.cork(() => writeError(this.res, this.kind, SPECS[this.kind], this.host, false));
  }
}
