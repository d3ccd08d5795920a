import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Logger } from '../../bus/log';
import type { AccessLog, AccessLogEntry } from '../accesslog/access_log';
import type { Registry } from '../registry/registry';
import type { Backend } from '../route/backend';
import { Endpoint, type EndpointPool, type LbAlgorithm } from '../route/pool';
import type { RouterStats } from '../varz/varz';
import {
  clientAddress,
  forwardedFor,
  forwardedProto,
  BodyFraming,
  canonicalMethod,
  isIdempotent,
  isPipelinable,
  RequestHeadScan,
  requestBodyFraming,
} from './request_head';
import { EndpointChooser } from './endpoint_choice';
import { FailureLog } from './failure_log';
import { connectionListedHeaders, isHopByHop } from './hop_by_hop';
import { affinityCookie, vcapCookieFor, VCAP_ID } from './sticky';
import { RouterErrorKind, routerErrorStatus, writeRouterError } from './router_error';
import { UpstreamFailure, type UpstreamClient, type UpstreamConnection, type UpstreamHandler } from './upstream';

export interface ProxySettings {
  /** Default balancing; a route's own `options.loadbalancing` wins. Changed live by the config store. */
  lbAlgorithm: LbAlgorithm;
  maxAttempts: number;
  coolDownMs: number;
  maxConnsPerBackend: number;
  /** Largest request line plus headers accepted; uWebSockets.js 20.30 sets no limit of its own. */
  maxHeaderBytes: number;
  /** Cookies that make a session sticky (JSESSIONID by default). */
  sessionCookies: readonly string[];
  /** Replace the client's X-Forwarded-For/-Proto instead of extending/keeping them (edge routers). */
  sanitizeForwarded: boolean;
  /** Set when the router drains (listen socket closed): responses say `Connection: close`. */
  draining: boolean;
}

const scan = new RequestHeadScan();
/** Bodies of requests that may be retried are kept up to this size. */
const REPLAY_LIMIT = 64 * 1024;
const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');
/** uWebSockets.js hands over request bodies in reads of up to 512 KiB. */
const UPLOAD_SCRATCH_BYTES = 512 * 1024;
let uploadScratch = Buffer.allocUnsafe(UPLOAD_SCRATCH_BYTES);

const enum ResponseBody {
  /** HEAD, 204, 304: head only. */
  None,
  /** Content-Length known: sent with tryEnd so the client sees the same length. */
  Fixed,
  /** Chunked or close-delimited upstream: re-chunked towards the client. */
  Streamed,
}

/** Response headers never copied from the app: hop-by-hop ones, and those uWS writes itself. */
function isOwnResponseHeader(lowerName: string): boolean {
  return isHopByHop(lowerName) || lowerName === 'content-length' || lowerName === 'date' || lowerName === 'uwebsockets';
}

const statusLines = new Map<number, string>();
function statusLine(status: number, reason: string): string {
  const standard = STATUS_CODES[status];
  if (reason === standard || reason === '') {
    let line = statusLines.get(status);
    if (line === undefined) {
      line = `${status} ${standard ?? 'Unknown'}`;
      statusLines.set(status, line);
    }
    return line;
  }
  return `${status} ${reason}`;
}

/**
 * The router's request path. onRequest reads top to bottom: accept, look up,
 * pick an endpoint, forward; the Exchange then streams the response back and
 * records it.
 */
export class Proxy {
  /** The uWS handler, bound once. */
  readonly handle = (res: HttpResponse, req: HttpRequest): void => this.onRequest(res, req);
  readonly chooser: EndpointChooser;
  readonly failures: FailureLog;
  /** Set by the router when --access-log is given; null costs the request path nothing. */
  accessLog: AccessLog | null = null;

  constructor(
    readonly registry: Registry,
    readonly upstream: UpstreamClient,
    readonly stats: RouterStats,
    readonly settings: ProxySettings,
    readonly log: Logger,
  ) {
    this.chooser = new EndpointChooser(registry, settings, stats);
    this.failures = new FailureLog(log);
  }

  onRequest(res: HttpResponse, req: HttpRequest): void {
    const startMs = performance.now();
    this.stats.requests++;

    // Accept: everything of `req` must be read now; it is gone after this call.
    scan.reset();
    req.forEach(scan.visit);
    const method = canonicalMethod(req.getMethod());
    const query = req.getQuery();
    const path = req.getUrl();
    const isHead = method === 'HEAD';
    const hostHeader = scan.host;
    if (scan.headBytes + path.length + (query === undefined ? 0 : query.length) > this.settings.maxHeaderBytes) {
      return this.reject(res, RouterErrorKind.HeadersTooLarge, hostHeader, isHead, startMs);
    }

    const framing = requestBodyFraming(scan);
    if (framing === BodyFraming.Invalid) {
      return this.reject(res, RouterErrorKind.BadRequest, hostHeader, isHead, startMs);
    }
    if (framing === BodyFraming.Length && scan.contentLength.length > 9) {
      // uWebSockets.js 20.30 cannot read 10-digit lengths and drops the connection after
      // this handler; nothing of such a request may start towards an app.
      return this.reject(res, RouterErrorKind.PayloadTooLarge, hostHeader, isHead, startMs);
    }
    // Look up, and pick an endpoint: the pinned instance, the sticky one, or the balancer's.
    const chosen = this.chooser.choose(hostHeader, path, scan.appInstance, scan.cookie);
    if (!(chosen instanceof Endpoint)) return this.reject(res, chosen, hostHeader, isHead, startMs);
    const pool = this.chooser.pool!;

    // Forward.
    const sanitize = this.settings.sanitizeForwarded;
    const client = clientAddress(res);
    const head =
      `${method} ${query === undefined ? path : `${path}?${query}`} HTTP/1.1\r\n` +
      scan.headerLines() +
      `x-forwarded-for: ${forwardedFor(scan.forwardedFor, client, sanitize)}\r\n` +
      `x-forwarded-proto: ${forwardedProto(scan.forwardedProto, sanitize)}\r\n` +
      `x-request-start: ${scan.requestStart === '' ? Date.now() : scan.requestStart}\r\n` +
      `x-vcap-request-id: ${randomUUID()}\r\n`;
    const bodyHeader =
      framing === BodyFraming.Length
        ? `content-length: ${scan.contentLength}\r\n`
        : framing === BodyFraming.Chunked
          ? 'transfer-encoding: chunked\r\n'
          : '';
    const hasBody = framing === BodyFraming.Chunked || (framing === BodyFraming.Length && scan.contentLength !== '0');
    const logEntry = this.accessLog === null ? null : this.accessLog.begin(client, hostHeader, head);
    const pipelinable = isPipelinable(method, hasBody, query, scan.accept);
    const exchange = new Exchange(this, res, pool, this.chooser.named, hostHeader, head, bodyHeader, method, hasBody, framing === BodyFraming.Chunked, pipelinable, startMs, logEntry);
    exchange.attempt(chosen, true);
  }

  /** Answers a request the router turns away itself (inside the uWS handler: no cork needed). */
  private reject(
    res: HttpResponse,
    kind: RouterErrorKind,
    hostHeader: string,
    isHead: boolean,
    startMs: number,
  ): void {
    // Before the error is written: afterwards `res` may no longer be read.
    if (this.accessLog !== null) this.accessLog.rejected(res, kind, hostHeader, isHead, startMs);
    const status = writeRouterError(res, kind, hostHeader, isHead, this.settings.draining);
    if (status !== 503) this.stats.badRequests++;
    this.record(status, startMs);
  }

  /** Counts a finished request; returns its time to the last byte in ms. */
  record(status: number, startMs: number): number {
    const latencyMs = performance.now() - startMs;
    this.stats.countResponse(status);
    this.stats.latency.record(latencyMs);
    return latencyMs;
  }
}

// Writes outside the uWS handler must be corked; cork takes a callback, and
// these shared ones read their arguments from here instead of closing over
// them, so streaming a response allocates no closures.
let corkExchange: Exchange;
/**
 * Body chunks of the upstream read being parsed. One read belongs to one
 * connection and is handled synchronously, so one array serves them all.
 */
const readChunks: Buffer[] = [];
function corkedFlush(): void {
  corkExchange.flushNow();
}

/** One client request from the moment it has an endpoint until its response is complete. */
class Exchange implements UpstreamHandler {
  private endpoint!: Endpoint;
  private conn: UpstreamConnection | null = null;
  /** Backends tried so far; only needed once a retry happens. */
  private tried: Backend[] | null = null;
  private attempts = 0;
  private freshConnectionRetried = false;
  /** Backends this request was sent to again after its pipelined attempt went unanswered: once each. */
  private replayedOn: Backend[] | null = null;
  private readonly idempotent: boolean;
  private readonly isHead: boolean;

  // Request body.
  private headSent = false;
  private bodyDone: boolean;
  private pendingBody: Buffer[] | null = null;
  /** Body bytes already sent on this attempt, kept while small enough to send again. */
  private replay: Buffer[] | null = null;
  private replayBytes = 0;
  /** More body was sent than is kept: this request can no longer be sent again. */
  private replayLost = false;
  private clientPaused = false;
  private bytesIn = 0;

  // Response.
  private status = 0;
  private responded = false;
  private done = false;
  private aborted = false;
  private bodyMode = ResponseBody.Streamed;
  private totalSize = 0;
  private bytesOut = 0;
  private headers: string[] | null = null;
  /** Received, not yet written: the head and body chunks of the current read. */
  private headPending = false;
  private upstreamComplete = false;
  /** Extra hop-by-hop headers the app's Connection header named. */
  private connectionListed: string[] | null = null;
  private reason = '';
  /** Part of a fixed-length body uWS could not take yet, and the write offset it started at. */
  private unsent: Buffer | null = null;
  private unsentOffset = 0;
  private writableHandler: ((offset: number) => boolean) | null = null;

  constructor(
    private readonly proxy: Proxy,
    private readonly res: HttpResponse,
    private readonly pool: EndpointPool,
    /** Route with session affinity: the instance the request's __VCAP_ID__ names, if registered. */
    private readonly named: Endpoint | null,
    private readonly hostHeader: string,
    private readonly head: string,
    private readonly bodyHeader: string,
    method: string,
    private readonly hasBody: boolean,
    private readonly chunkedBody: boolean,
    /** May share an app connection with others (request_head.ts isPipelinable). */
    private readonly pipelinable: boolean,
    private readonly startMs: number,
    /** Only with --access-log: what the log line needs of the request, read while it was valid. */
    private readonly logEntry: AccessLogEntry | null,
  ) {
    this.idempotent = isIdempotent(method);
    // Only an idempotent request is ever sent twice once its body has gone out.
    this.replayLost = !this.idempotent;
    this.isHead = method === 'HEAD';
    this.bodyDone = !hasBody;
    res.onAborted(() => this.clientAborted());
    if (hasBody) res.onData((chunk, isLast) => this.clientData(chunk, isLast));
  }

  /** `allowReuse` false: a connection of its own, fresh (and so not pipelined). */
  attempt(endpoint: Endpoint, allowReuse: boolean): void {
    this.endpoint = endpoint;
    this.attempts++;
    if (this.tried !== null && !this.tried.includes(endpoint.backend)) this.tried.push(endpoint.backend);
    if (this.pipelinable && allowReuse) {
      const pipelined = this.proxy.upstream.pipeline(endpoint.backend, this, this.requestHead(), this.isHead);
      if (pipelined !== null) {
        this.conn = pipelined;
        this.headSent = true;
        return;
      }
    }
    this.headSent = false;
    const retryable = this.idempotent && (!this.hasBody || !this.replayLost);
    const conn = this.proxy.upstream.acquire(endpoint.backend, this, this.isHead, retryable, allowReuse);
    this.conn = conn;
    if (conn.connected) this.sendRequest(conn);
  }

  upstreamReady(conn: UpstreamConnection): void {
    if (conn === this.conn) this.sendRequest(conn);
  }

  private requestHead(): string {
    return this.head + this.endpoint.headerLines + this.bodyHeader + '\r\n';
  }

  private sendRequest(conn: UpstreamConnection): void {
    const head = this.requestHead();
    this.headSent = true;
    const pending = this.pendingBody;
    if (pending === null) {
      conn.write(head);
    } else {
      this.pendingBody = null;
      conn.socket.cork();
      conn.write(head);
      let drained = true;
      for (const chunk of pending) {
        this.keepForReplay(chunk);
        drained = conn.write(chunk);
      }
      conn.socket.uncork();
      if (!drained) return; // resumed on upstreamDrain
    }
    this.resumeClient();
  }

  private clientData(data: ArrayBuffer, isLast: boolean): void {
    if (this.done || this.aborted) return; // the response is over: the rest of the body is discarded
    const length = data.byteLength;
    this.bytesIn += length;
    const conn = this.conn;
    if (length > 0 && conn !== null && this.headSent && this.replayLost && conn.socket.writableLength === 0) {
      this.writeThroughScratch(conn, data, isLast);
      return;
    }
    let out: Buffer | null = null;
    if (length > 0) {
      // uWS reuses the memory behind `data` once this callback returns.
      const copy = Buffer.copyBytesFrom(new Uint8Array(data));
      out = this.chunkedBody ? Buffer.concat([Buffer.from(length.toString(16) + '\r\n'), copy, CRLF]) : copy;
    }
    if (isLast) {
      this.bodyDone = true;
      if (this.chunkedBody) out = out === null ? LAST_CHUNK : Buffer.concat([out, LAST_CHUNK]);
    }
    if (out === null) return;
    if (conn !== null && this.headSent) {
      this.keepForReplay(out);
      if (!conn.write(out)) this.pauseClient();
    } else {
      (this.pendingBody ??= []).push(out);
      this.pauseClient();
    }
  }

  /**
   * The common case of a streaming upload: the app's socket has nothing
   * queued, and nothing must be kept for a retry. The chunk goes through one
   * shared buffer instead of a fresh copy each time (a 1 GiB upload would
   * otherwise leave a GiB of garbage for the GC to catch up with). If a write
   * does not complete at once, the socket keeps that buffer, and the next
   * upload chunk gets a new one.
   */
  private writeThroughScratch(conn: UpstreamConnection, data: ArrayBuffer, isLast: boolean): void {
    const length = data.byteLength;
    if (uploadScratch.length < length) uploadScratch = Buffer.allocUnsafe(Math.max(length, UPLOAD_SCRATCH_BYTES));
    const chunk = uploadScratch.subarray(0, length);
    chunk.set(new Uint8Array(data));
    let drained: boolean;
    if (this.chunkedBody) {
      conn.write(length.toString(16) + '\r\n');
      conn.write(chunk);
      drained = conn.write(isLast ? '\r\n0\r\n\r\n' : '\r\n');
    } else {
      drained = conn.write(chunk);
    }
    if (conn.socket.writableLength > 0) uploadScratch = Buffer.allocUnsafe(UPLOAD_SCRATCH_BYTES);
    if (isLast) this.bodyDone = true;
    if (!drained) this.pauseClient();
  }

  upstreamDrain(conn: UpstreamConnection): void {
    if (conn === this.conn) this.resumeClient();
  }

  private keepForReplay(chunk: Buffer): void {
    if (this.replayLost) return;
    this.replayBytes += chunk.length;
    if (this.replayBytes > REPLAY_LIMIT) {
      this.replayLost = true;
      this.replay = null;
    } else {
      (this.replay ??= []).push(chunk);
    }
  }

  private pauseClient(): void {
    if (this.clientPaused || this.bodyDone || this.done || this.aborted) return;
    this.clientPaused = true;
    this.res.pause();
  }

  private resumeClient(): void {
    if (!this.clientPaused || this.done || this.aborted) return;
    this.clientPaused = false;
    this.res.resume();
  }

  // Stream back. Head, body chunks and the end of one upstream read are
  // collected, then written to the client in one corked flush.

  upstreamHead(conn: UpstreamConnection, status: number, reason: string, headers: string[]): void {
    if (conn !== this.conn) return;
    if (this.logEntry !== null) this.logEntry.appHeadMs = performance.now();
    this.status = status;
    this.reason = reason;
    this.headers = headers;
    let contentLength = -1;
    this.connectionListed = null;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i];
      if (name.length === 14 && name.toLowerCase() === 'content-length') contentLength = Number(headers[i + 1]);
      else if (name.length === 10 && name.toLowerCase() === 'connection') {
        const listed = connectionListedHeaders(headers[i + 1]);
        if (listed.length > 0) this.connectionListed = this.connectionListed === null ? listed : this.connectionListed.concat(listed);
      }
    }
    this.bodyMode =
      this.isHead || status === 204 || status === 304
        ? ResponseBody.None
        : contentLength >= 0
          ? ResponseBody.Fixed
          : ResponseBody.Streamed;
    this.totalSize = contentLength;
    this.headPending = true;
  }

  upstreamBody(conn: UpstreamConnection, chunk: Buffer): void {
    if (conn !== this.conn) return;
    this.bytesOut += chunk.length;
    readChunks.push(chunk);
  }

  upstreamEnd(conn: UpstreamConnection): void {
    if (conn === this.conn) this.upstreamComplete = true;
  }

  upstreamReadDone(conn: UpstreamConnection): void {
    if (conn !== this.conn) return;
    if (!this.done && !this.aborted && (this.headPending || readChunks.length > 0 || this.upstreamComplete)) {
      corkExchange = this;
      this.res.cork(corkedFlush);
    }
    readChunks.length = 0;
    if (this.upstreamComplete) {
      this.conn = null;
      // A socket whose request body was not fully sent cannot carry another request.
      this.proxy.upstream.finish(conn, this.bodyDone && this.pendingBody === null);
    }
  }

  flushNow(): void {
    if (this.headPending) {
      this.headPending = false;
      this.writeHead();
    }
    const chunks = readChunks;
    for (let i = 0; i < chunks.length && !this.done; i++) this.writeBody(chunks[i]);
    if (!this.upstreamComplete || this.done) return;
    if (this.bodyMode === ResponseBody.Streamed) {
      this.res.end();
      this.clientDone();
    } else if (this.unsent === null) {
      // The app sent fewer bytes than it announced: the client must not wait forever.
      this.cutResponse();
    }
  }

  private writeHead(): void {
    const res = this.res;
    const headers = this.headers!;
    this.headers = null;
    this.responded = true;
    res.writeStatus(statusLine(this.status, this.reason));
    // Draining: the client must not send another request on this connection.
    if (this.proxy.settings.draining) res.writeHeader('Connection', 'close');
    let contentLength: string | undefined;
    // All the app's headers go to uWS in one writeHeader call (a native call
    // and two string conversions each, otherwise): the first name, then its
    // value with the other lines appended. Names are tokens and values hold
    // no CR or LF (both parsers refuse them), so the lines cannot be forged.
    let firstName: string | undefined;
    let lines = '';
    // With affinity the route's own pin replaces the session-cookie one.
    const affinity = this.pool.sessionAffinity;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i];
      const lower = name.toLowerCase();
      if (isOwnResponseHeader(lower)) {
        if (lower === 'content-length') contentLength = headers[i + 1];
        continue;
      }
      if (this.connectionListed !== null && this.connectionListed.includes(lower)) continue;
      if (firstName === undefined) {
        firstName = name;
        lines = headers[i + 1];
      } else {
        lines += '\r\n' + name + ': ' + headers[i + 1];
      }
      if (lower === 'set-cookie' && !affinity && this.endpoint.instanceId !== '') {
        const cookie = this.stickyCookie(headers, headers[i + 1]);
        if (cookie !== undefined) lines += '\r\nSet-Cookie: ' + cookie;
      }
    }
    if (firstName !== undefined) res.writeHeader(firstName, lines);
    if (affinity && this.endpoint !== this.named) {
      const cookie = affinityCookie(this.endpoint.instanceId, this.pool.contextPath, headers);
      if (cookie !== undefined) res.writeHeader('Set-Cookie', cookie);
    }
    if (this.bodyMode === ResponseBody.None) {
      // uWS would otherwise invent a length; HEAD and 304 keep the app's.
      if (contentLength !== undefined && this.status !== 204) res.writeHeader('Content-Length', contentLength);
      res.endWithoutBody();
      this.clientDone();
    } else if (this.bodyMode === ResponseBody.Fixed && this.totalSize === 0) {
      res.end();
      this.clientDone();
    }
  }

  /** The app started a session: its instance id goes along, unless the app set __VCAP_ID__ itself. */
  private stickyCookie(headers: string[], setCookie: string): string | undefined {
    const cookie = vcapCookieFor(setCookie, this.proxy.settings.sessionCookies, this.endpoint.instanceId, this.pool.contextPath);
    if (cookie === undefined) return undefined;
    for (let i = 0; i < headers.length; i += 2)
      if (headers[i].toLowerCase() === 'set-cookie' && headers[i + 1].startsWith(VCAP_ID + '=')) return undefined;
    return cookie;
  }

  private writeBody(chunk: Buffer): void {
    const res = this.res;
    if (this.bodyMode !== ResponseBody.Fixed) {
      if (!res.write(chunk)) this.waitForWritable();
      return;
    }
    if (this.unsent !== null) {
      // Several chunks can arrive in one read after uWS pushed back.
      this.unsent = Buffer.concat([this.unsent, chunk]);
      return;
    }
    const offset = res.getWriteOffset();
    const [ok, done] = res.tryEnd(chunk, this.totalSize);
    if (done) {
      this.clientDone();
    } else if (!ok) {
      // The chunk may be a view of the upstream read buffer, reused by the next read.
      this.unsent = Buffer.from(chunk);
      this.unsentOffset = offset;
      this.waitForWritable();
    }
  }

  /** The client is slower than the app: stop reading the app until uWS has room. */
  private waitForWritable(): void {
    this.conn?.pause();
    if (this.writableHandler === null) {
      this.writableHandler = (offset) => this.clientWritable(offset);
      this.res.onWritable(this.writableHandler);
    }
  }

  private clientWritable(offset: number): boolean {
    if (this.done || this.aborted) return true;
    const unsent = this.unsent;
    if (unsent !== null) {
      const [ok, done] = this.res.tryEnd(unsent.subarray(offset - this.unsentOffset), this.totalSize);
      if (done) {
        this.unsent = null;
        this.clientDone();
        return true;
      }
      if (!ok) return false;
      this.unsent = null;
      if (this.upstreamComplete) {
        // Everything the app sent is out, and it was less than it announced.
        this.cutResponse();
        return true;
      }
    }
    this.conn?.resume();
    return true;
  }

  /** Ends a response that cannot be completed: the client sees the connection close. */
  private cutResponse(): void {
    this.status = 502;
    this.proxy.stats.badGateways++;
    this.clientDone();
    this.res.close();
  }

  upstreamFailed(conn: UpstreamConnection, failure: UpstreamFailure, detail: string): void {
    if (conn !== this.conn) return;
    this.conn = null;
    // Whatever this read brought is void; nothing of it reached the client.
    this.headPending = false;
    readChunks.length = 0;
    this.upstreamComplete = false;
    if (this.done || this.aborted) return;
    const backend = this.endpoint.backend;
    if (!this.responded) {
      const replayable = !this.hasBody || !this.replayLost;
      if (failure === UpstreamFailure.Connect) {
        backend.failedAt = Date.now();
        if (this.retry(false)) return;
      } else if (failure === UpstreamFailure.Unanswered) {
        // Pipelined, and its connection will not answer it: once more to the
        // same instance on a connection of its own, then elsewhere as any
        // request whose connection closed before a response.
        if (this.replayedOn === null || !this.replayedOn.includes(backend)) {
          (this.replayedOn ??= []).push(backend);
          this.proxy.stats.pipelineReplays++;
          if (this.retry(true)) return;
        }
        if (this.retry(false)) return;
      } else if (failure === UpstreamFailure.ClosedBeforeResponse && this.idempotent && replayable) {
        // A kept-alive socket the app had just closed: one more try on a fresh one.
        if (conn.reused && !this.freshConnectionRetried) {
          this.freshConnectionRetried = true;
          if (this.retry(true)) return;
        }
        if (this.retry(false)) return;
      }
    }
    this.proxy.failures.failed(backend.key, this.hostHeader, this.attempts, detail);
    if (this.responded) {
      // Part of the response is out: all that is left is to cut the client off.
      this.cutResponse();
      return;
    }
    this.proxy.stats.badGateways++;
    const kind = failure === UpstreamFailure.Timeout ? RouterErrorKind.EndpointTimeout : RouterErrorKind.EndpointFailure;
    this.status = routerErrorStatus(kind);
    this.res.cork(() => writeRouterError(this.res, kind, this.hostHeader, this.isHead, this.proxy.settings.draining));
    this.clientDone();
  }

  /** Sends the request again: to the same endpoint on a fresh socket, or to another endpoint. */
  private retry(sameEndpoint: boolean): boolean {
    let next: Endpoint;
    if (sameEndpoint) {
      next = this.endpoint;
    } else {
      if (this.attempts >= this.proxy.settings.maxAttempts) return false;
      this.tried ??= [this.endpoint.backend];
      const picked = this.proxy.chooser.retry(this.pool, this.tried);
      if (picked === undefined) return false;
      next = picked;
    }
    if (this.replay !== null) {
      this.pendingBody = this.pendingBody === null ? this.replay : this.replay.concat(this.pendingBody);
    }
    this.replay = null;
    this.replayBytes = 0;
    this.proxy.stats.retries++;
    this.attempt(next, !sameEndpoint);
    return true;
  }

  private clientAborted(): void {
    this.aborted = true;
    if (this.done) return;
    if (this.conn !== null) {
      this.conn.abort(this);
      this.conn = null;
    }
    this.proxy.stats.clientAborts++;
    this.status = 499;
    this.finish();
  }

  private clientDone(): void {
    if (this.done) return;
    this.done = true;
    this.finish();
  }

  // Log.
  private finish(): void {
    const proxy = this.proxy;
    const latencyMs = proxy.record(this.status, this.startMs);
    const app = proxy.stats.apps.record(this.endpoint.appId);
    if (app !== null) {
      app.requests++;
      app.response(this.status, latencyMs / 1000);
    }
    if (this.logEntry !== null)
      proxy.accessLog!.finish(
        this.logEntry,
        this.startMs,
        this.status,
        this.bytesIn,
        this.bytesOut,
        this.endpoint,
        !this.responded && this.status >= 500, // a 502/504 the router wrote itself
        this.isHead,
      );
  }
}
