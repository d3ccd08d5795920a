// A small JSON-over-HTTP layer on uWebSockets.js for the controller API. It
// hides the uWS rules (read `req` synchronously, onAborted before any async
// work, cork writes made outside the handler, copy onData buffers) behind an
// Exchange that async handlers can use freely.

import { STATUS_CODES } from 'node:http';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket_context_t, WebSocketBehavior } from 'uWebSockets.js';

type UwsModule = typeof import('uWebSockets.js');
let uwsModule: UwsModule | undefined;
function loadUws(): UwsModule {
  // Loaded on first use, so that importing this file (e.g. in a unit test) costs nothing.
  uwsModule ??= require('uWebSockets.js') as UwsModule;
  return uwsModule;
}

/** A failure to report to the client as `{"code","description"}` with this status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = status,
    /** Sent with the error, e.g. Retry-After. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const BODY_HIGH_WATER = 1024 * 1024;
const BODY_LOW_WATER = 256 * 1024;

/**
 * The request body, read from the moment the request arrives (uWS drops body
 * bytes that arrive before onData is attached). Chunks queue up to a high
 * water mark, then the socket is paused until the handler catches up.
 */
class BodyReader {
  private readonly chunks: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private paused = false;
  private wake: (() => void) | undefined;
  received = 0;

  get isEnded(): boolean {
    return this.ended;
  }

  constructor(private readonly res: HttpResponse) {
    res.onData((chunk, isLast) => {
      if (chunk.byteLength > 0) {
        // onData's ArrayBuffer is neutered when the callback returns: copy it.
        const copy = Buffer.copyBytesFrom(new Uint8Array(chunk));
        this.chunks.push(copy);
        this.queued += copy.length;
        this.received += copy.length;
      }
      if (isLast) this.ended = true;
      if (!this.ended && this.queued >= BODY_HIGH_WATER && !this.paused) {
        this.paused = true;
        res.pause();
      }
      this.wake?.();
    });
  }

  /** The next chunk, or null at the end of the body (or once aborted). */
  async next(aborted: () => boolean): Promise<Buffer | null> {
    while (this.chunks.length === 0) {
      if (this.ended || aborted()) return null;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    const chunk = this.chunks.shift()!;
    this.queued -= chunk.length;
    if (this.paused && this.queued <= BODY_LOW_WATER && !aborted()) {
      this.paused = false;
      this.res.resume();
    }
    return chunk;
  }

  abort(): void {
    this.ended = true;
    this.chunks.length = 0;
    this.wake?.();
  }
}

export class Exchange {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Record<string, string> = {};
  private aborted = false;
  private done = false;
  private streaming = false;
  private readonly body: BodyReader | undefined;
  private readonly abortListeners: Array<() => void> = [];
  private headListener: ((status: number) => void) | undefined;

  constructor(private readonly res: HttpResponse, req: HttpRequest) {
    this.method = req.getMethod().toUpperCase();
    this.path = req.getUrl();
    this.query = new URLSearchParams(req.getQuery() ?? '');
    req.forEach((key, value) => {
      this.headers[key.toLowerCase()] = value;
    });
    res.onAborted(() => {
      this.aborted = true;
      this.body?.abort();
      for (const listener of this.abortListeners.splice(0)) listener();
    });
    if (this.method !== 'GET' && this.method !== 'HEAD') this.body = new BodyReader(res);
  }

  get isAborted(): boolean {
    return this.aborted;
  }

  /** Called when the client goes away before the response is complete. */
  onAbort(listener: () => void): void {
    if (this.aborted) listener();
    else this.abortListeners.push(listener);
  }

  /** Called once, with the status, when the response head goes out (metrics). */
  onHead(listener: (status: number) => void): void {
    this.headListener = listener;
  }

  private headSent(status: number): void {
    const listener = this.headListener;
    this.headListener = undefined;
    listener?.(status);
  }

  /** The declared Content-Length, or undefined. */
  contentLength(): number | undefined {
    const value = this.headers['content-length'];
    return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
  }

  /** Next body chunk, or null at its end. */
  nextChunk(): Promise<Buffer | null> {
    return this.body ? this.body.next(() => this.aborted) : Promise.resolve(null);
  }

  /** The whole body, refused with 413 beyond `limit` bytes. */
  async readAll(limit: number): Promise<Buffer> {
    const declared = this.contentLength();
    if (declared !== undefined && declared > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
    const parts: Buffer[] = [];
    let size = 0;
    for (let chunk = await this.nextChunk(); chunk !== null; chunk = await this.nextChunk()) {
      size += chunk.length;
      if (size > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
      parts.push(chunk);
    }
    return Buffer.concat(parts);
  }

  /** The body parsed as JSON; an empty body is undefined. */
  async readJson(limit = 1024 * 1024): Promise<unknown> {
    const raw = await this.readAll(limit);
    if (raw.length === 0) return undefined;
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch {
      throw new HttpError(400, 'the body is not valid JSON');
    }
  }

  json(status: number, value: unknown): void {
    this.send(status, JSON.stringify(value), { 'Content-Type': 'application/json' });
  }

  error(status: number, description: string, code = status): void {
    this.json(status, { code, description });
  }

  /**
   * One complete response. `close` ends the connection after it: used when
   * the client is still sending a body we will not read.
   */
  send(status: number, body: string | Buffer, headers: Record<string, string> = {}, close = false): void {
    if (this.aborted || this.done || this.streaming) return;
    this.done = true;
    this.headSent(status);
    // Answered before the body was read (401, 404, 413...): the rest of it would be taken for the next request.
    const closeAfter = close || this.unreadBody();
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      for (const [key, value] of Object.entries(headers)) this.res.writeHeader(key, value);
      this.res.end(body, closeAfter);
    });
  }

  private unreadBody(): boolean {
    if (this.body === undefined || this.body.isEnded) return false;
    const length = this.contentLength();
    return (length !== undefined && length > 0) || this.headers['transfer-encoding'] !== undefined;
  }

  empty(status: number): void {
    if (this.aborted || this.done || this.streaming) return;
    this.done = true;
    this.headSent(status);
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      this.res.endWithoutBody();
    });
  }

  /** Starts a chunked response; follow with write() calls and end(). */
  startStream(status: number, headers: Record<string, string>): void {
    if (this.aborted || this.done || this.streaming) return;
    this.streaming = true;
    this.headSent(status);
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      for (const [key, value] of Object.entries(headers)) this.res.writeHeader(key, value);
      // uWS sends the head only with the first write: flush it now so the client sees the stream start.
      this.res.write('');
    });
  }

  get isStreaming(): boolean {
    return this.streaming;
  }

  /** Writes one chunk of a stream; resolves when the client can take more. */
  async write(chunk: string | Buffer): Promise<void> {
    if (this.aborted || this.done || !this.streaming) return;
    let ok = true;
    this.res.cork(() => {
      ok = this.res.write(chunk);
    });
    if (ok || this.aborted) return;
    await new Promise<void>((resolve) => {
      this.onAbort(resolve);
      this.res.onWritable(() => {
        resolve();
        return true;
      });
    });
  }

  end(): void {
    if (this.aborted || this.done) return;
    this.done = true;
    this.res.cork(() => this.res.end());
  }

  /**
   * Accepts a WebSocket upgrade (only from a `ws` route's upgrade handler);
   * `userData`'s own properties end up on the WebSocket. False when the
   * client left meanwhile or the request was answered already.
   */
  upgrade(userData: object, context: us_socket_context_t): boolean {
    if (this.aborted || this.done || this.streaming) return false;
    this.done = true;
    this.headSent(101);
    const h = this.headers;
    this.res.cork(() => {
      this.res.upgrade(userData, h['sec-websocket-key'] ?? '', h['sec-websocket-protocol'] ?? '', h['sec-websocket-extensions'] ?? '', context);
    });
    return true;
  }
}

function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
}

export type Handler = (exchange: Exchange) => Promise<void>;

export class HttpServer {
  private app: TemplatedApp | undefined;
  private listenSocket: us_listen_socket | undefined;
  private readonly websockets: Array<{ pattern: string; behavior: WebSocketBehavior<object> }> = [];

  constructor(
    private readonly handler: Handler,
    private readonly onError: (error: unknown, exchange: Exchange) => void,
  ) {}

  /**
   * A WebSocket route, added before listen(). A plain (non-upgrade) request
   * to its path falls through to the handler.
   */
  addWebSocket<UserData extends object>(pattern: string, behavior: WebSocketBehavior<UserData>): void {
    this.websockets.push({ pattern, behavior: behavior as unknown as WebSocketBehavior<object> });
  }

  listen(host: string, port: number): Promise<number> {
    const uws = loadUws();
    const app = uws.App();
    this.app = app;
    for (const { pattern, behavior } of this.websockets) app.ws(pattern, behavior);
    app.any('/*', (res, req) => {
      const exchange = new Exchange(res, req);
      this.handler(exchange).catch((error: unknown) => this.onError(error, exchange));
    });
    return new Promise((resolve, reject) => {
      app.listen(host, port, (token) => {
        if (!token) {
          reject(new Error(`cannot listen on ${host}:${port}: address in use or not permitted`));
          return;
        }
        this.listenSocket = token;
        resolve(uws.us_socket_local_port(token));
      });
    });
  }

  close(): void {
    if (this.listenSocket !== undefined) loadUws().us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
    (this.app as (TemplatedApp & { close?(): void }) | undefined)?.close?.();
    this.app = undefined;
  }
}
