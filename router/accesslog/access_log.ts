import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Logger } from '../../bus/log';
import { canonicalMethod, clientAddress, forwardedFor, forwardedProto } from '../proxy/request_head';
import { RouterErrorKind, routerErrorBodyBytes, routerErrorCode, routerErrorStatus } from '../proxy/router_error';
import type { WebSocketRecord } from '../proxy/websocket';
import type { Endpoint } from '../route/pool';
import { formatAccessLogLine, type AccessLogRecord } from './format';
import { LineWriter } from './writer';

export { ACCESS_LOG_LINE, formatAccessLogLine, type AccessLogRecord } from './format';

type Handler = (res: HttpResponse, req: HttpRequest) => void;

/**
 * What the access log needs of a request that went to an app, read while the
 * uWS request is still valid. Created only when `--access-log` is given.
 */
export class AccessLogEntry {
  /** performance.now() when the app's response head arrived; 0 until then. */
  appHeadMs = 0;
  /** performance.now() when the request was handed to the upstream client (the Exchange starts its first attempt at once). */
  readonly appStartMs = performance.now();
  readonly startedAt = Date.now();

  constructor(
    readonly host: string,
    readonly requestLine: string,
    readonly referer: string,
    readonly userAgent: string,
    readonly clientAddress: string,
    readonly forwardedFor: string,
    readonly forwardedProto: string,
    readonly vcapRequestId: string,
  ) {}
}

/**
 * The WebSocket module's record (router/proxy/websocket.ts), delivered through
 * its `onRecord` once per upgrade request: at close, or when refused.
 */
export type WebSocketLogRecord = WebSocketRecord;

/** The request half of a record, read inside a uWS handler (upgrade handler included). */
export type RequestFields = Pick<
  AccessLogRecord,
  'host' | 'startedAt' | 'requestLine' | 'referer' | 'userAgent' | 'clientAddress' | 'forwardedFor' | 'forwardedProto'
>;

export interface AccessLogOptions {
  path: string;
  maxBufferBytes: number;
  /** --forwarded-headers sanitize: the client's X-Forwarded-* are replaced, as proxy.ts does. */
  sanitizeForwarded: boolean;
  log: Logger;
}

/**
 * The router's access log: one line per request in protocol.md's format,
 * through a LineWriter (asynchronous, bounded). The proxy holds `null` instead
 * of an AccessLog when `--access-log` is not given, so logging costs nothing then.
 */
export class AccessLog {
  /** The uWS request of the handler call in progress (see wrap()); null outside one. */
  private req: HttpRequest | null = null;
  private readonly writer: LineWriter;
  websocketLines = 0;

  private constructor(private readonly options: AccessLogOptions) {
    this.writer = new LineWriter({ path: options.path, maxBufferBytes: options.maxBufferBytes, log: options.log });
  }

  /** Opens the file (creating it); rejects when it cannot be written, so the router refuses to start. */
  static async open(options: AccessLogOptions): Promise<AccessLog> {
    const accessLog = new AccessLog(options);
    try {
      await accessLog.writer.open();
    } catch (error) {
      throw new Error(`cannot open access log ${options.path}: ${(error as Error).message}`, { cause: error });
    }
    return accessLog;
  }

  get linesWritten(): number {
    return this.writer.linesWritten;
  }
  get linesDropped(): number {
    return this.writer.linesDropped;
  }
  get writeErrors(): number {
    return this.writer.writeErrors;
  }

  /**
   * The proxy's uWS handler, keeping the request at hand for reject():
   * a request the router answers itself never builds a forwarded head to read from.
   */
  wrap(handler: Handler): Handler {
    return (res, req) => {
      this.req = req;
      try {
        handler(res, req);
      } finally {
        this.req = null;
      }
    };
  }

  /**
   * For a request going to an app, in the Exchange constructor (inside the uWS
   * handler): request line and headers are read back from the head forwarded
   * to the app, so the log shows exactly what the app was sent.
   */
  begin(clientAddress: string, host: string, head: string): AccessLogEntry {
    const lineEnd = head.indexOf('\r\n');
    return new AccessLogEntry(
      host,
      lineEnd === -1 ? head : head.slice(0, lineEnd),
      headValue(head, '\r\nreferer: '),
      headValue(head, '\r\nuser-agent: '),
      clientAddress,
      headValue(head, '\r\nx-forwarded-for: '),
      headValue(head, '\r\nx-forwarded-proto: '),
      headValue(head, '\r\nx-vcap-request-id: '),
    );
  }

  /** Exchange.finish: the response is complete, cut, or the client left (499). */
  finish(
    entry: AccessLogEntry,
    startMs: number,
    status: number,
    bytesReceived: number,
    bytesSent: number,
    endpoint: Endpoint,
    routerAnswered: boolean,
    isHead: boolean,
  ): void {
    const now = performance.now();
    const responseMs = now - startMs;
    const appMs = (entry.appHeadMs === 0 ? now : entry.appHeadMs) - entry.appStartMs;
    let routerError = '';
    if (routerAnswered) {
      const kind = status === 504 ? RouterErrorKind.EndpointTimeout : RouterErrorKind.EndpointFailure;
      routerError = routerErrorCode(kind) ?? '';
      bytesSent = routerErrorBodyBytes(kind, entry.host, isHead);
    }
    this.writer.write(
      formatAccessLogLine({
        host: entry.host,
        startedAt: entry.startedAt,
        requestLine: entry.requestLine,
        status,
        bytesReceived,
        bytesSent,
        referer: entry.referer,
        userAgent: entry.userAgent,
        clientAddress: entry.clientAddress,
        backendAddress: endpoint.backend.key,
        forwardedFor: entry.forwardedFor,
        forwardedProto: entry.forwardedProto,
        vcapRequestId: entry.vcapRequestId,
        responseTimeSeconds: responseMs / 1000,
        gorouterTimeSeconds: (responseMs - appMs) / 1000,
        appId: endpoint.appId,
        appIndex: endpoint.instanceIndex,
        instanceId: endpoint.instanceId,
        routerError,
      }),
    );
  }

  /**
   * Proxy.reject: a request the router answers itself (404, 400, 503, 431, ...),
   * called before the error is written, while `res` and the request are valid.
   */
  rejected(res: HttpResponse, kind: RouterErrorKind, host: string, isHead: boolean, startMs: number): void {
    const fields = this.requestFields(res, this.req, host);
    const seconds = (performance.now() - startMs) / 1000;
    this.writer.write(
      formatAccessLogLine({
        ...fields,
        status: routerErrorStatus(kind),
        bytesReceived: 0,
        bytesSent: routerErrorBodyBytes(kind, host, isHead),
        backendAddress: '',
        vcapRequestId: '',
        responseTimeSeconds: seconds,
        gorouterTimeSeconds: seconds,
        appId: '',
        appIndex: '',
        instanceId: '',
        routerError: routerErrorCode(kind) ?? '',
      }),
    );
  }

  /**
   * The request half of a record, for a handler that has the uWS request (the
   * WebSocket upgrade handler): call it before the handler returns.
   */
  requestFields(res: HttpResponse, req: HttpRequest | null, host: string): RequestFields {
    const client = clientAddress(res);
    if (req === null) {
      return {
        host,
        startedAt: Date.now(),
        requestLine: '',
        referer: '',
        userAgent: '',
        clientAddress: client,
        forwardedFor: client,
        forwardedProto: 'http',
      };
    }
    const query = req.getQuery();
    const url = query === undefined || query === '' ? req.getUrl() : `${req.getUrl()}?${query}`;
    const sanitize = this.options.sanitizeForwarded;
    return {
      host,
      startedAt: Date.now(),
      requestLine: `${canonicalMethod(req.getMethod())} ${url} HTTP/1.1`,
      referer: req.getHeader('referer'),
      userAgent: req.getHeader('user-agent'),
      clientAddress: client,
      forwardedFor: forwardedFor(req.getHeader('x-forwarded-for'), client, sanitize),
      forwardedProto: forwardedProto(req.getHeader('x-forwarded-proto'), sanitize),
    };
  }

  /**
   * A WebSocket, one line at its close (or when its upgrade was refused):
   * status 101, bytes received/sent are message payload bytes client -> app and
   * app -> client, response_time the whole life from the upgrade request to the
   * close. gorouter_time is not measured for WebSockets (written 0).
   */
  websocket(r: WebSocketLogRecord): void {
    this.websocketLines++;
    this.writer.write(
      formatAccessLogLine({
        host: r.host,
        startedAt: r.startedAt,
        requestLine: `${r.method} ${r.path} HTTP/1.1`,
        status: r.status,
        bytesReceived: r.bytesFromClient,
        bytesSent: r.bytesToClient,
        referer: r.referer,
        userAgent: r.userAgent,
        clientAddress: r.remoteAddress,
        backendAddress: r.backend,
        forwardedFor: r.forwardedFor,
        forwardedProto: r.forwardedProto,
        vcapRequestId: r.requestId,
        responseTimeSeconds: r.durationMs / 1000,
        gorouterTimeSeconds: 0,
        appId: r.appId,
        appIndex: r.instanceIndex,
        instanceId: r.instanceId,
        routerError: r.routerError ?? '',
      }),
    );
  }

  /** SIGHUP: reopen the file by its path (logrotate moved it). */
  reopen(): void {
    this.writer.reopen();
  }

  /** Writes out what is buffered (bounded wait), then closes the file. */
  close(timeoutMs?: number): Promise<void> {
    return this.writer.close(timeoutMs);
  }
}

/** The value of a header line in a request head the router built (lower-case names, one space). */
function headValue(head: string, marker: string): string {
  const at = head.indexOf(marker);
  if (at === -1) return '';
  const start = at + marker.length;
  const end = head.indexOf('\r\n', start);
  return end === -1 ? head.slice(start) : head.slice(start, end);
}
