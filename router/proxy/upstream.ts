import * as net from 'node:net';
import type { Backend } from '../route/backend';
import { parseSimpleResponse } from './response_head';
import {
  kOnBody,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageComplete,
  LENIENT_NONE,
  ParserClass,
  RESPONSE,
  SKIP_BODY,
  type HttpParser,
  type ParseError,
} from './http_parser';

/** Why an upstream exchange failed; decides the status and whether a retry is safe. */
export enum UpstreamFailure {
  /** No connection could be made (refused, unreachable, connect timeout): the app saw nothing. */
  Connect = 1,
  /** The connection closed or reset before any response byte. */
  ClosedBeforeResponse = 2,
  /** No response head within the backend timeout. */
  Timeout = 3,
  /** The app's response was not valid HTTP/1.1 (bad status line, bad chunking, oversized head). */
  InvalidResponse = 4,
  /** The connection closed after the response had begun. */
  ClosedDuringResponse = 5,
}

/** What an upstream connection reports to the request it is serving. */
export interface UpstreamHandler {
  /** Connected: the request head (and any body) may be written now. */
  upstreamReady(conn: UpstreamConnection): void;
  // Head, body and end arrive while one read is being parsed; the handler
  // should hold them until upstreamReadDone, so that a parse error later in
  // the same read can still become a clean 502, and so that everything of one
  // read goes to the client in one corked write.
  /** `headers` alternates names and values as the app sent them. */
  upstreamHead(conn: UpstreamConnection, status: number, reason: string, headers: string[], keepAlive: boolean): void;
  /**
   * `chunk` may be a view of the shared read buffer: valid until
   * upstreamReadDone returns; copy what must be kept longer.
   */
  upstreamBody(conn: UpstreamConnection, chunk: Buffer): void;
  /** The response is complete; after this read the handler must call UpstreamClient.finish. */
  upstreamEnd(conn: UpstreamConnection): void;
  /** One read was parsed without error: pass on what it brought. */
  upstreamReadDone(conn: UpstreamConnection): void;
  /** The connection is gone; it was already closed and returned. */
  upstreamFailed(conn: UpstreamConnection, failure: UpstreamFailure, detail: string): void;
  /** A write that returned false has drained. */
  upstreamDrain(conn: UpstreamConnection): void;
}

export interface UpstreamOptions {
  connectTimeoutMs: number;
  /** Longest wait for the response head, and longest silence while a response is owed. */
  responseTimeoutMs: number;
  /** Idle keep-alive sockets are closed after this; below common app keep-alive timeouts. */
  idleTimeoutMs: number;
  /** Idle sockets older than this are not reused for requests that cannot be retried. */
  safeReuseMs: number;
  maxResponseHeaderBytes: number;
}

const enum State {
  Connecting,
  Busy,
  Idle,
  Closed,
}

const kConnection = Symbol('upstreamConnection');
type TaggedSocket = net.Socket & { [kConnection]: UpstreamConnection };
type TaggedParser = HttpParser & { connection: UpstreamConnection };

/**
 * Every backend socket reads into this one buffer (net's `onread`): no
 * stream machinery and no Buffer per read. Only valid during the callback:
 * body chunks are views of it, written to the client before the next read
 * (and copied only when the client pushes back). 256 KiB takes a 64 KiB
 * response with its head in one read (with 64 KiB it took two, and the
 * router's CPU per 64 KiB response was 45% higher).
 */
const sharedReadBuffer = Buffer.allocUnsafe(256 * 1024);

export class UpstreamConnection {
  readonly socket: TaggedSocket;
  readonly parser: TaggedParser;
  handler: UpstreamHandler | null = null;
  state = State.Connecting;
  /** Start of the current state (connecting, idle), epoch ms. */
  since: number;
  lastActivity: number;
  /** Requests completed on this socket before the current one. */
  served = 0;
  responseStarted = false;
  headReceived = false;
  keepAlive = false;
  skipBody = false;
  /** A 1xx interim response is being parsed; the real one follows. */
  interim = false;
  /** The response to the current request has been parsed to its end. */
  complete = false;
  /** The app sent more than one response: the socket cannot be trusted. */
  unexpectedData = false;
  /** Body bytes still owed by a response whose head the fast parser took (response_head.ts). */
  bodyRemaining = 0;
  paused = false;

  constructor(
    readonly client: UpstreamClient,
    readonly backend: Backend,
    now: number,
  ) {
    this.since = now;
    this.lastActivity = now;
    this.parser = new ParserClass() as TaggedParser;
    this.parser.initialize(RESPONSE, {}, client.options.maxResponseHeaderBytes, LENIENT_NONE);
    this.parser.connection = this;
    this.parser[kOnHeaders] = parserOnHeaders;
    this.parser[kOnHeadersComplete] = parserOnHeadersComplete;
    this.parser[kOnBody] = parserOnBody;
    this.parser[kOnMessageComplete] = parserOnMessageComplete;
    this.socket = net.connect({
      host: backend.host,
      port: backend.port,
      noDelay: true,
      onread: { buffer: sharedReadBuffer, callback: socketOnRead as (nread: number, buf: Uint8Array) => boolean },
    }) as TaggedSocket;
    this.socket[kConnection] = this;
    this.socket.on('connect', socketOnConnect);
    this.socket.on('end', socketOnEnd);
    this.socket.on('error', socketOnError);
    this.socket.on('close', socketOnClose);
    this.socket.on('drain', socketOnDrain);
  }

  get connected(): boolean {
    return this.state === State.Busy;
  }

  get reused(): boolean {
    return this.served > 0;
  }

  /** Writes request bytes; false means the socket buffer is full (wait for upstreamDrain). */
  write(data: string | Buffer): boolean {
    this.lastActivity = Date.now();
    return this.socket.write(data);
  }

  pause(): void {
    if (this.paused || this.state === State.Closed) return;
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    if (!this.paused || this.state === State.Closed) return;
    this.paused = false;
    this.socket.resume();
  }

  /** Ends the connection on behalf of its request (client gone): no callback follows. */
  abort(): void {
    this.client.destroy(this);
  }

  resetForRequest(handler: UpstreamHandler, skipBody: boolean): void {
    this.handler = handler;
    this.skipBody = skipBody;
    this.responseStarted = false;
    this.headReceived = false;
    this.interim = false;
    this.keepAlive = false;
    this.complete = false;
    this.bodyRemaining = 0;
  }
}

// Listeners are shared functions (`this` is the socket or parser), so a
// connection costs no closures and a request none at all.

function socketOnConnect(this: TaggedSocket): void {
  const conn = this[kConnection];
  if (conn.state !== State.Connecting) return;
  conn.state = State.Busy;
  conn.since = conn.lastActivity = Date.now();
  conn.handler?.upstreamReady(conn);
}

function socketOnRead(this: TaggedSocket, nread: number, buf: Buffer): boolean {
  const conn = this[kConnection];
  if (conn.state !== State.Busy || conn.handler === null) {
    // An idle keep-alive socket must stay silent; anything else poisons it.
    conn.client.destroy(conn);
    return false;
  }
  conn.lastActivity = Date.now();
  const handler = conn.handler;
  if (conn.bodyRemaining > 0) {
    // The rest of a Content-Length body: counted off, passed on as it is.
    if (nread > conn.bodyRemaining) {
      conn.client.fail(conn, UpstreamFailure.InvalidResponse, 'data after the response');
      return false;
    }
    conn.bodyRemaining -= nread;
    handler.upstreamBody(conn, buf.subarray(0, nread));
    if (conn.state !== State.Busy) return false;
    if (conn.bodyRemaining === 0) {
      conn.complete = true;
      handler.upstreamEnd(conn);
    }
    handler.upstreamReadDone(conn);
    return true;
  }
  if (!conn.responseStarted) {
    conn.responseStarted = true;
    // Most responses are a plain head, whole in the first read, and a Content-Length body.
    const simple = parseSimpleResponse(buf, 0, nread, conn.client.options.maxResponseHeaderBytes, conn.skipBody);
    // Bytes after the body go to llhttp with the rest, which refuses them.
    if (simple !== null && simple.bodyStart + simple.bodyAvailable === nread) {
      conn.headReceived = true;
      conn.keepAlive = simple.keepAlive;
      handler.upstreamHead(conn, simple.status, simple.reason, simple.headers, simple.keepAlive);
      if (conn.state !== State.Busy) return false;
      if (simple.bodyAvailable > 0) handler.upstreamBody(conn, buf.subarray(simple.bodyStart, nread));
      if (conn.state !== State.Busy) return false;
      if (simple.bodyAvailable === simple.bodyLength) {
        conn.complete = true;
        handler.upstreamEnd(conn);
      } else {
        conn.bodyRemaining = simple.bodyLength - simple.bodyAvailable;
      }
      handler.upstreamReadDone(conn);
      return true;
    }
  }
  const result = conn.parser.execute(buf.subarray(0, nread));
  if (conn.state !== State.Busy) return false; // the handler gave the connection up meanwhile
  if (typeof result !== 'number') {
    const error = result as ParseError;
    conn.client.fail(conn, UpstreamFailure.InvalidResponse, `invalid response: ${error.code} ${error.reason}`);
    return false;
  }
  if (conn.unexpectedData) {
    conn.client.fail(conn, UpstreamFailure.InvalidResponse, 'data after the response');
    return false;
  }
  handler.upstreamReadDone(conn);
  return true;
}

function socketOnEnd(this: TaggedSocket): void {
  const conn = this[kConnection];
  if (conn.state !== State.Busy || conn.handler === null) {
    conn.client.destroy(conn);
    return;
  }
  if (conn.responseStarted) {
    // A close-delimited body ends here; any other message is truncated.
    const handler = conn.handler;
    const error = conn.parser.finish();
    if (error === undefined && conn.complete) {
      handler.upstreamReadDone(conn);
      return;
    }
    conn.client.fail(
      conn,
      error === undefined && !conn.headReceived ? UpstreamFailure.InvalidResponse : UpstreamFailure.ClosedDuringResponse,
      error === undefined ? 'connection closed mid-response' : `truncated response: ${error.reason}`,
    );
    return;
  }
  conn.client.fail(conn, UpstreamFailure.ClosedBeforeResponse, 'connection closed before response');
}

function socketOnError(this: TaggedSocket, error: NodeJS.ErrnoException): void {
  const conn = this[kConnection];
  failOnClose(conn, `${error.code ?? 'error'}: ${error.message}`);
}

function socketOnClose(this: TaggedSocket): void {
  failOnClose(this[kConnection], 'connection closed');
}

function failOnClose(conn: UpstreamConnection, detail: string): void {
  switch (conn.state) {
    case State.Connecting:
      conn.client.fail(conn, UpstreamFailure.Connect, detail);
      return;
    case State.Busy:
      conn.client.fail(
        conn,
        conn.responseStarted ? UpstreamFailure.ClosedDuringResponse : UpstreamFailure.ClosedBeforeResponse,
        detail,
      );
      return;
    case State.Idle:
      conn.client.destroy(conn);
      return;
  }
}

function socketOnDrain(this: TaggedSocket): void {
  const conn = this[kConnection];
  if (conn.state === State.Busy) conn.handler?.upstreamDrain(conn);
}

function parserOnHeaders(this: TaggedParser, headers: string[]): void {
  // llhttp hands over very long heads in parts; keep them until complete.
  const pending = (this as unknown as { pendingHeaders?: string[] }).pendingHeaders;
  (this as unknown as { pendingHeaders?: string[] }).pendingHeaders = pending ? pending.concat(headers) : headers;
}

function parserOnHeadersComplete(
  this: TaggedParser,
  _versionMajor: number,
  _versionMinor: number,
  headers: string[] | undefined,
  _method: unknown,
  _url: unknown,
  status: number,
  reason: string,
  _upgrade: boolean,
  keepAlive: boolean,
): number {
  const conn = this.connection;
  const holder = this as unknown as { pendingHeaders?: string[] };
  if (holder.pendingHeaders !== undefined) {
    headers = headers === undefined ? holder.pendingHeaders : holder.pendingHeaders.concat(headers);
    holder.pendingHeaders = undefined;
  }
  if (conn.handler === null || conn.state !== State.Busy || conn.complete) {
    // A second response to one request: the socket is out of step with its requests.
    conn.unexpectedData = true;
    return SKIP_BODY;
  }
  if (status < 200) {
    if (status === 101) {
      conn.client.fail(conn, UpstreamFailure.InvalidResponse, 'unexpected 101 Switching Protocols');
      return SKIP_BODY;
    }
    // 100 Continue was already sent to the client by the server; other
    // interim responses (102, 103) are dropped, the final one follows.
    conn.interim = true;
    return 0;
  }
  conn.headReceived = true;
  conn.keepAlive = keepAlive;
  conn.handler.upstreamHead(conn, status, reason, headers ?? [], keepAlive);
  return conn.skipBody ? SKIP_BODY : 0;
}

function parserOnBody(this: TaggedParser, chunk: Buffer): void {
  const conn = this.connection;
  if (conn.state === State.Busy && conn.handler !== null) conn.handler.upstreamBody(conn, chunk);
}

function parserOnMessageComplete(this: TaggedParser): void {
  const conn = this.connection;
  if (conn.interim) {
    conn.interim = false;
    return;
  }
  if (conn.state === State.Busy && conn.handler !== null && conn.headReceived && !conn.complete) {
    conn.complete = true;
    conn.handler.upstreamEnd(conn);
  }
}

/**
 * HTTP/1.1 client towards app instances: per-backend keep-alive pools,
 * one socket per in-flight request, coarse timeouts swept by one timer.
 */
export class UpstreamClient {
  /** Every open connection, for the timeout sweep. */
  private readonly live = new Set<UpstreamConnection>();
  private readonly sweepTimer: NodeJS.Timeout;

  constructor(readonly options: UpstreamOptions) {
    // One timer for all sockets instead of socket.setTimeout, which allocates a timer per call.
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), 250);
    this.sweepTimer.unref();
  }

  get openConnections(): number {
    return this.live.size;
  }

  /**
   * A connection for one request to `backend`: an idle keep-alive one when
   * there is one (`connected` is then true at once), otherwise a new one whose
   * handler hears upstreamReady. `retryable` requests may reuse any idle
   * socket, since a socket the app closed meanwhile just means a retry; others
   * only reuse sockets idle for less than safeReuseMs.
   */
  acquire(backend: Backend, handler: UpstreamHandler, skipBody: boolean, retryable: boolean, allowReuse = true): UpstreamConnection {
    const now = Date.now();
    let conn: UpstreamConnection | undefined;
    const idle = backend.idle as UpstreamConnection[];
    if (allowReuse && idle.length > 0) {
      const newest = idle[idle.length - 1];
      if (retryable || now - newest.since < this.options.safeReuseMs) {
        idle.pop();
        conn = newest;
        conn.state = State.Busy;
        conn.since = conn.lastActivity = now;
      }
    }
    if (conn === undefined) {
      conn = new UpstreamConnection(this, backend, now);
      this.live.add(conn);
    }
    conn.resetForRequest(handler, skipBody);
    backend.inFlight++;
    return conn;
  }

  /** The request is over: keep the socket for the next one if it is clean, else close it. */
  finish(conn: UpstreamConnection, reusable: boolean): void {
    if (conn.state !== State.Busy) return;
    conn.handler = null;
    conn.backend.inFlight--;
    if (!reusable || !conn.keepAlive || conn.backend.refs === 0) {
      this.close(conn);
      return;
    }
    conn.served++;
    conn.state = State.Idle;
    conn.since = Date.now();
    // Idle sockets must be read so that an app closing them is noticed.
    conn.resume();
    (conn.backend.idle as UpstreamConnection[]).push(conn);
  }

  /** Closes a connection without telling its handler (the request gave it up). */
  destroy(conn: UpstreamConnection): void {
    if (conn.state === State.Closed) return;
    if (conn.state === State.Idle) removeIdle(conn);
    else if (conn.handler !== null) conn.backend.inFlight--;
    conn.handler = null;
    this.close(conn);
  }

  /** Closes a connection and tells its request why. */
  fail(conn: UpstreamConnection, failure: UpstreamFailure, detail: string): void {
    if (conn.state === State.Closed) return;
    const handler = conn.handler;
    this.destroy(conn);
    handler?.upstreamFailed(conn, failure, detail);
  }

  /** Closes the idle sockets of a backend that left the routing table. */
  closeIdle(backend: Backend): void {
    const idle = backend.idle as UpstreamConnection[];
    while (idle.length > 0) this.destroy(idle[idle.length - 1]);
  }

  close(conn: UpstreamConnection): void {
    if (conn.state === State.Closed) return;
    conn.state = State.Closed;
    this.live.delete(conn);
    conn.socket.destroy();
  }

  shutdown(): void {
    clearInterval(this.sweepTimer);
    for (const conn of [...this.live]) this.destroy(conn);
  }

  private sweep(now: number): void {
    const { connectTimeoutMs, responseTimeoutMs, idleTimeoutMs } = this.options;
    for (const conn of this.live) {
      if (conn.state === State.Connecting) {
        if (now - conn.since > connectTimeoutMs) this.fail(conn, UpstreamFailure.Connect, 'connect timeout');
      } else if (conn.state === State.Busy) {
        // Paused for a slow client: the silence is ours, not the app's.
        if (!conn.paused && now - conn.lastActivity > responseTimeoutMs)
          this.fail(
            conn,
            conn.headReceived ? UpstreamFailure.ClosedDuringResponse : UpstreamFailure.Timeout,
            'backend timeout',
          );
      } else if (conn.state === State.Idle && now - conn.since > idleTimeoutMs) {
        this.destroy(conn);
      }
    }
  }
}

function removeIdle(conn: UpstreamConnection): void {
  const idle = conn.backend.idle as UpstreamConnection[];
  const i = idle.indexOf(conn);
  if (i !== -1) idle.splice(i, 1);
}
