import * as net from 'node:net';
import type { Backend } from '../route/backend';
import { parseSimpleResponse } from './response_head';
import {
  kOnBody,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageBegin,
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
  /**
   * A pipelined request without a response byte whose connection can no
   * longer answer it: it closed, failed or timed out on an earlier response,
   * announced its close, or the request waited too long behind another one.
   * Only GET, HEAD and OPTIONS without a body are pipelined, so it may be sent
   * again (RFC 9112 §9.3.2), on a connection of its own.
   */
  Unanswered = 6,
}

/** What an upstream connection reports to the request it is serving. */
export interface UpstreamHandler {
  /** Connected: the request head (and any body) may be written now. Not called for pipelined requests. */
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
  /**
   * One read was parsed without error: pass on what it brought. A response
   * that completes while requests wait behind it on the connection is passed
   * on at once, before the read is parsed further.
   */
  upstreamReadDone(conn: UpstreamConnection): void;
  /** The request is off the connection (which may be closed already); it hears nothing more from it. */
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
  /** Idle sockets older than this are not reused for requests that cannot be retried, nor for pipelining. */
  safeReuseMs: number;
  maxResponseHeaderBytes: number;
  /** Most requests outstanding on one connection; below 2, nothing is pipelined. */
  pipelineDepth: number;
  /**
   * A connection takes further pipelined requests only while the oldest
   * request it owes a response was written less than this long ago: nothing
   * joins a queue behind a response that is already slow. 0: only requests
   * not yet written (this turn's) share a connection.
   */
  pipelineGuardMs: number;
  /** Pipelined requests waiting behind a response older than this are sent again on connections of their own. */
  pipelineStallMs: number;
  /** After such a stall, requests to that backend are not pipelined for this long. */
  pipelineCoolDownMs: number;
}

/** What the upstream client counts; the router's stats object. */
export interface UpstreamCounters {
  /** Requests written while another one was outstanding on the same connection. */
  pipelinedRequests: number;
  /** Backends found closing connections on pipelined requests (served unpipelined since). */
  pipelineRefusals: number;
  /** Pipelines whose waiting requests were moved off a slow response. */
  pipelineStalls: number;
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
 * router's CPU per 64 KiB response was 45% higher), or a few hundred small
 * pipelined responses.
 */
const sharedReadBuffer = Buffer.allocUnsafe(256 * 1024);

export class UpstreamConnection {
  readonly socket: TaggedSocket;
  readonly parser: TaggedParser;
  /**
   * Requests written (or to be written at the end of this event-loop turn)
   * on this connection, oldest first: responses arrive in this order.
   * `handler` is the first, whose response is being read.
   */
  readonly queue: UpstreamHandler[] = [];
  /** Per queued request: when it was written (0: not yet, it is in this turn's batch). */
  readonly sentAt: number[] = [];
  /** Per queued request: HEAD, so its response has no body whatever its head says. */
  readonly headOnly: boolean[] = [];
  handler: UpstreamHandler | null = null;
  /** Queued requests nobody waits for any more (see `discard`). */
  discarded = 0;
  state = State.Connecting;
  /** Start of the current state (connecting, idle), epoch ms. */
  since: number;
  lastActivity: number;
  /** Responses completed on this socket. */
  served = 0;
  /** `served` when the socket was last taken from the idle pool; -1 while it never was. */
  servedWhenTaken = -1;
  /** Taken for pipelined requests: more may join (UpstreamClient.pipeline). */
  pipelining = false;
  /** Two requests were outstanding at once since the connection was last idle: every queued one is pipelined. */
  shared = false;
  /** Request heads of this event-loop turn, written in one go at its end. */
  outgoing = '';

  // The response being read (to `handler`'s request).
  responseStarted = false;
  headReceived = false;
  keepAlive = false;
  skipBody = false;
  /** A 1xx interim response is being parsed; the real one follows. */
  interim = false;
  /** The response has been parsed to its end. */
  complete = false;
  /** The app sent a response no request is waiting for: the socket cannot be trusted. */
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
    this.parser[kOnMessageBegin] = parserOnMessageBegin;
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

  /** The request of `handler` gives the connection up (client gone): no callback follows. */
  abort(handler: UpstreamHandler): void {
    this.client.abandon(this, handler);
  }

  /** Makes the first queued request the one whose response is read next. */
  startResponse(): void {
    this.handler = this.queue.length > 0 ? this.queue[0] : null;
    this.skipBody = this.queue.length > 0 && this.headOnly[0];
    this.responseStarted = false;
    this.headReceived = false;
    this.interim = false;
    this.keepAlive = false;
    this.complete = false;
    this.bodyRemaining = 0;
  }

  /** Queues a request; true when it joined another outstanding one. */
  enqueue(handler: UpstreamHandler, headOnly: boolean, sentAt: number): boolean {
    this.queue.push(handler);
    this.sentAt.push(sentAt);
    this.headOnly.push(headOnly);
    if (this.queue.length === 1) {
      this.startResponse();
      return false;
    }
    this.shared = true;
    return true;
  }
}

/**
 * Takes the responses of requests nobody waits for any more (the client
 * left, or the request was sent again elsewhere): they are read to their end
 * and dropped, which keeps the connection in step with its other requests.
 */
const discard: UpstreamHandler = {
  upstreamReady() {},
  upstreamHead() {},
  upstreamBody() {},
  upstreamEnd() {},
  upstreamReadDone(conn) {
    if (conn.complete) conn.client.finish(conn, true);
  },
  upstreamFailed() {},
  upstreamDrain() {},
};

// Listeners are shared functions (`this` is the socket or parser), so a
// connection costs no closures and a request none at all.

function socketOnConnect(this: TaggedSocket): void {
  const conn = this[kConnection];
  if (conn.state !== State.Connecting) return;
  conn.state = State.Busy;
  conn.since = conn.lastActivity = Date.now();
  // Pipelined heads were handed to the socket already; net sends them now.
  if (!conn.pipelining) conn.handler?.upstreamReady(conn);
}

/**
 * One read may hold the rest of one response and any number of the next
 * ones (pipelined requests): each goes to its request in turn, and every
 * response that completes before the end of the read is passed on before
 * the next is parsed.
 */
function socketOnRead(this: TaggedSocket, nread: number, buf: Buffer): boolean {
  const conn = this[kConnection];
  if (conn.state !== State.Busy || conn.handler === null) {
    // An idle keep-alive socket must stay silent; anything else poisons it.
    conn.client.destroy(conn);
    return false;
  }
  conn.lastActivity = Date.now();
  conn.backend.windowBytes += nread;
  let pos = 0;
  while (pos < nread) {
    const handler = conn.handler!;
    if (conn.bodyRemaining > 0) {
      // The rest of a Content-Length body: counted off, passed on as it is.
      const take = nread - pos < conn.bodyRemaining ? nread - pos : conn.bodyRemaining;
      conn.bodyRemaining -= take;
      handler.upstreamBody(conn, buf.subarray(pos, pos + take));
      if (conn.state !== State.Busy) return false;
      pos += take;
      if (conn.bodyRemaining > 0) break;
      conn.complete = true;
      handler.upstreamEnd(conn);
      if (!responseDone(conn, handler, pos < nread)) return !isClosed(conn);
      continue;
    }
    if (!conn.responseStarted) {
      conn.responseStarted = true;
      // Most responses are a plain head, whole in one read, and a Content-Length body.
      const simple = parseSimpleResponse(buf, pos, nread, conn.client.options.maxResponseHeaderBytes, conn.skipBody);
      if (simple !== null) {
        conn.headReceived = true;
        conn.keepAlive = simple.keepAlive;
        handler.upstreamHead(conn, simple.status, simple.reason, simple.headers, simple.keepAlive);
        if (conn.state !== State.Busy) return false;
        const bodyEnd = simple.bodyStart + simple.bodyAvailable;
        if (simple.bodyAvailable > 0) handler.upstreamBody(conn, buf.subarray(simple.bodyStart, bodyEnd));
        if (conn.state !== State.Busy) return false;
        pos = bodyEnd;
        if (simple.bodyAvailable < simple.bodyLength) {
          conn.bodyRemaining = simple.bodyLength - simple.bodyAvailable;
          break;
        }
        conn.complete = true;
        handler.upstreamEnd(conn);
        if (!responseDone(conn, handler, pos < nread)) return !isClosed(conn);
        continue;
      }
    }
    // The rest of this read goes through llhttp, which passes each response
    // that completes with requests behind it on by itself (parserOnMessageComplete).
    const result = conn.parser.execute(pos === 0 ? buf.subarray(0, nread) : buf.subarray(pos, nread));
    if (isClosed(conn)) return false;
    if (typeof result !== 'number') {
      const error = result as ParseError;
      conn.client.fail(conn, UpstreamFailure.InvalidResponse, `invalid response: ${error.code} ${error.reason}`);
      return false;
    }
    if (conn.unexpectedData) {
      conn.client.fail(conn, UpstreamFailure.InvalidResponse, 'data after the response');
      return false;
    }
    break;
  }
  // The response in progress, or one llhttp completed last: pass on what this read brought.
  if (conn.state === State.Busy && conn.responseStarted) conn.handler!.upstreamReadDone(conn);
  return !isClosed(conn);
}

/** The state as it is now (handlers called meanwhile may have changed it). */
/**
 * Responses (with their heads) larger than this on average are not
 * pipelined. Measured here (benchmarks/NOTES.md): 16 pipelined 64 KiB
 * responses per connection tripled the uWebSockets.js app's CPU per response
 * (it queues what the socket cannot take at once and copies every later
 * response behind it) and raised the router's by 80%, while 100 B responses
 * cost both less than unpipelined ones.
 */
const LARGE_RESPONSE_BYTES = 8 * 1024;
/** Responses per measuring window of a backend's average response size. */
const SIZE_WINDOW = 32;

function isClosed(conn: UpstreamConnection): boolean {
  return conn.state === State.Closed;
}

/**
 * A response completed inside a read. With bytes after it and no request
 * waiting for them, the app is out of step: the response fails rather than
 * goes out. False when the read must not go on (the connection is closed or
 * idle).
 */
function responseDone(conn: UpstreamConnection, handler: UpstreamHandler, moreBytes: boolean): boolean {
  if (moreBytes && conn.queue.length < 2) {
    conn.client.fail(conn, UpstreamFailure.InvalidResponse, 'data after the response');
    return false;
  }
  handler.upstreamReadDone(conn);
  return conn.state === State.Busy;
}

function socketOnEnd(this: TaggedSocket): void {
  const conn = this[kConnection];
  if (conn.state !== State.Busy || conn.handler === null) {
    conn.client.destroy(conn);
    return;
  }
  if (conn.responseStarted) {
    // A close-delimited body ends here; any other message is truncated.
    const error = conn.parser.finish();
    if (conn.state !== State.Busy) return;
    if (error === undefined && conn.complete) {
      conn.handler!.upstreamReadDone(conn);
      return;
    }
    conn.client.fail(
      conn,
      error === undefined && !conn.headReceived ? UpstreamFailure.InvalidResponse : UpstreamFailure.ClosedDuringResponse,
      error === undefined ? 'connection closed mid-response' : `truncated response: ${error.reason}`,
      true,
    );
    return;
  }
  conn.client.fail(conn, UpstreamFailure.ClosedBeforeResponse, 'connection closed before response', true);
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
        true,
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

function parserOnMessageBegin(this: TaggedParser): void {
  const conn = this.connection;
  // A response with no request left to take it: the socket is out of step with its requests.
  if (conn.handler === null || conn.complete) conn.unexpectedData = true;
  else conn.responseStarted = true;
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
  if (conn.handler === null || conn.state !== State.Busy || conn.complete || conn.unexpectedData) {
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
  if (conn.state === State.Busy && conn.handler !== null && !conn.unexpectedData) conn.handler.upstreamBody(conn, chunk);
}

function parserOnMessageComplete(this: TaggedParser): void {
  const conn = this.connection;
  if (conn.interim) {
    conn.interim = false;
    return;
  }
  if (conn.state !== State.Busy || conn.handler === null || !conn.headReceived || conn.complete || conn.unexpectedData) return;
  conn.complete = true;
  const handler = conn.handler;
  handler.upstreamEnd(conn);
  // Requests wait behind it: what follows in this read is theirs, so this one goes out now.
  // Otherwise it waits for the end of the read, where anything after it is an error.
  if (conn.queue.length > 1) handler.upstreamReadDone(conn);
}

/**
 * HTTP/1.1 client towards app instances: per-backend keep-alive pools, coarse
 * timeouts swept by one timer, and pipelining. Requests that may be pipelined
 * (UpstreamClient.pipeline) join the connection of their backend's current
 * batch and go out together, one write per connection, at the end of the
 * event-loop turn; responses are matched to them in order. Everything else
 * has a connection to itself (acquire).
 */
export class UpstreamClient {
  /** Every open connection, for the timeout sweep. */
  private readonly live = new Set<UpstreamConnection>();
  private readonly sweepTimer: NodeJS.Timeout;
  /** Connections with request heads to write at the end of this turn. */
  private readonly toFlush: UpstreamConnection[] = [];
  private flushScheduled = false;
  private readonly flushBound = (): void => this.flush();

  constructor(
    readonly options: UpstreamOptions,
    readonly counters: UpstreamCounters = { pipelinedRequests: 0, pipelineRefusals: 0, pipelineStalls: 0 },
    /** Told when a backend stops being pipelined, and why. */
    private readonly onPipelineOff: (backend: Backend, reason: string) => void = () => {},
  ) {
    // One timer for all sockets instead of socket.setTimeout, which allocates a timer per call.
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), 250);
    this.sweepTimer.unref();
  }

  get openConnections(): number {
    return this.live.size;
  }

  /**
   * A connection to `backend` for one request, to itself: an idle keep-alive
   * one when there is one (`connected` is then true at once), otherwise a new
   * one whose handler hears upstreamReady. `retryable` requests may reuse any
   * idle socket, since a socket the app closed meanwhile just means a retry;
   * others only reuse sockets idle for less than safeReuseMs.
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
        conn.servedWhenTaken = conn.served;
      }
    }
    if (conn === undefined) conn = this.open(backend, now);
    conn.pipelining = false;
    conn.enqueue(handler, skipBody, now);
    backend.inFlight++;
    return conn;
  }

  /**
   * Queues a request that may be pipelined (GET, HEAD or OPTIONS without a
   * body: `head` is all of it) on the connection taking this turn's requests
   * to `backend`: that one while it has room and owes no response older than
   * the guard, else a recently idle one, else a new one. The head is written
   * at the end of the turn, with the others of that connection. Null when the
   * backend is not pipelined now: use acquire.
   */
  pipeline(backend: Backend, handler: UpstreamHandler, head: string, headOnly: boolean): UpstreamConnection | null {
    const options = this.options;
    if (options.pipelineDepth < 2) return null;
    const now = Date.now();
    if (backend.pipelineOffUntil > now || backend.largeResponses) return null;
    let conn = backend.batch as UpstreamConnection | null;
    if (conn === null || !this.takesMore(conn, now)) {
      conn = null;
      const idle = backend.idle as UpstreamConnection[];
      if (idle.length > 0 && now - idle[idle.length - 1].since < options.safeReuseMs) {
        conn = idle.pop()!;
        conn.state = State.Busy;
        conn.since = conn.lastActivity = now;
        conn.servedWhenTaken = conn.served;
      } else {
        conn = this.open(backend, now);
      }
      conn.pipelining = true;
      backend.batch = conn;
    }
    if (conn.enqueue(handler, headOnly, 0)) this.counters.pipelinedRequests++;
    backend.inFlight++;
    if (conn.outgoing === '') this.toFlush.push(conn);
    conn.outgoing += head;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushBound);
    }
    return conn;
  }


  /** Whether a pipelined request may join `conn` now. */
  private takesMore(conn: UpstreamConnection, now: number): boolean {
    if (conn.state !== State.Busy && conn.state !== State.Connecting) return false;
    if (!conn.pipelining || conn.paused || conn.queue.length >= this.options.pipelineDepth) return false;
    // An announced close: nothing after this response will be answered.
    if (conn.headReceived && !conn.keepAlive) return false;
    const oldest = conn.sentAt[0];
    return oldest === 0 || now - oldest < this.options.pipelineGuardMs;
  }

  /** Writes this turn's request heads, one write per connection. */
  private flush(): void {
    this.flushScheduled = false;
    const list = this.toFlush;
    const now = Date.now();
    for (let i = 0; i < list.length; i++) writeOutgoing(list[i], now);
    list.length = 0;
  }

  /** The response in progress is over: the next queued request's is read next, or the socket is kept for later, or closed. */
  finish(conn: UpstreamConnection, reusable: boolean): void {
    if (conn.state !== State.Busy) return;
    const handler = conn.queue.shift();
    conn.sentAt.shift();
    conn.headOnly.shift();
    const backend = conn.backend;
    if (handler !== discard) backend.inFlight--;
    else conn.discarded--;
    conn.served++;
    if (++backend.windowResponses === SIZE_WINDOW) {
      backend.largeResponses = backend.windowBytes > SIZE_WINDOW * LARGE_RESPONSE_BYTES;
      backend.windowBytes = 0;
      backend.windowResponses = 0;
    }
    if (!reusable || !conn.keepAlive) {
      if (conn.served === 1 && conn.queue.length > conn.discarded) {
        // An app that keeps no connection alive would have every pipeline sent twice.
        this.pipelineOff(conn.backend, Date.now() + this.options.pipelineCoolDownMs, 'the app closes its connections after one response');
      }
      // Whatever was pipelined behind this response will not be answered here.
      this.closeAndRequeue(conn, 'the app closed the connection after a response');
      return;
    }
    // The response may have paused the socket for its client; it is done with it.
    conn.resume();
    if (conn.queue.length > 0) {
      conn.startResponse();
      if (conn.discarded === conn.queue.length) this.destroy(conn);
      return;
    }
    conn.handler = null;
    conn.shared = false;
    if (conn.backend.batch === conn) conn.backend.batch = null;
    if (conn.backend.refs === 0) {
      this.close(conn);
      return;
    }
    conn.state = State.Idle;
    conn.since = Date.now();
    (conn.backend.idle as UpstreamConnection[]).push(conn);
  }

  /**
   * The request of `handler` is over for the router (its client left). Alone
   * on its connection, the connection closes, so that the app sees it go;
   * with others queued, its response is read and dropped.
   */
  abandon(conn: UpstreamConnection, handler: UpstreamHandler): void {
    if (conn.state === State.Closed) return;
    const i = conn.queue.indexOf(handler);
    if (i === -1) return;
    conn.queue[i] = discard;
    conn.discarded++;
    conn.backend.inFlight--;
    if (i === 0) {
      conn.handler = discard;
      // Paused for the client that left: the rest of its response is read and dropped.
      conn.resume();
    }
    if (conn.discarded === conn.queue.length) this.destroy(conn);
  }

  /** Closes a connection without telling its requests (they gave it up). */
  destroy(conn: UpstreamConnection): void {
    if (conn.state === State.Closed) return;
    if (conn.state === State.Idle) removeIdle(conn);
    else conn.backend.inFlight -= conn.queue.length - conn.discarded;
    conn.queue.length = 0;
    conn.sentAt.length = 0;
    conn.headOnly.length = 0;
    conn.discarded = 0;
    this.close(conn);
  }

  /**
   * Closes a connection and tells its requests why. The first one hears
   * `failure`; any pipelined request without a response byte may be sent
   * again (Unanswered), unless the connection never came up (Connect).
   * `byApp`: the app closed or reset the connection.
   */
  fail(conn: UpstreamConnection, failure: UpstreamFailure, detail: string, byApp = false): void {
    if (conn.state === State.Closed) return;
    const queue = conn.queue.slice();
    const pipelined = conn.shared;
    const started = conn.responseStarted;
    this.destroy(conn);
    // A kept-alive socket that the app closed just as requests went out on it
    // answered nothing since it left the pool: that is a race, not a refusal.
    const race = conn.servedWhenTaken >= 0 && conn.served === conn.servedWhenTaken;
    if (pipelined && byApp && !race) {
      // The app dropped a connection on which it owed pipelined responses
      // without announcing a close (uWebSockets.js apps do this when a request
      // arrives while an asynchronous response is pending): no more pipelining.
      if (this.pipelineOff(conn.backend, Infinity, `connection closed with pipelined requests unanswered (${detail})`)) this.counters.pipelineRefusals++;
    }
    for (let i = 0; i < queue.length; i++) {
      const handler = queue[i];
      if (handler === discard) continue;
      let f = failure;
      if (failure !== UpstreamFailure.Connect && pipelined && (i > 0 || !started)) {
        if (i > 0 || failure === UpstreamFailure.ClosedBeforeResponse) f = UpstreamFailure.Unanswered;
      }
      handler.upstreamFailed(conn, f, detail);
    }
  }

  /** Closes a connection after its last good response; the requests queued behind it go elsewhere. */
  private closeAndRequeue(conn: UpstreamConnection, detail: string): void {
    const queue = conn.queue.slice();
    this.destroy(conn);
    for (const handler of queue) if (handler !== discard) handler.upstreamFailed(conn, UpstreamFailure.Unanswered, detail);
  }

  /**
   * The first request on `conn` has waited past the stall bound with others
   * behind it: those go elsewhere now (their responses here will be dropped),
   * and the backend is not pipelined for a while.
   */
  private unstall(conn: UpstreamConnection, now: number): void {
    const moved: UpstreamHandler[] = [];
    for (let i = 1; i < conn.queue.length; i++) {
      const handler = conn.queue[i];
      if (handler === discard) continue;
      conn.queue[i] = discard;
      conn.discarded++;
      conn.backend.inFlight--;
      moved.push(handler);
    }
    if (moved.length === 0) return;
    this.counters.pipelineStalls++;
    this.pipelineOff(conn.backend, now + this.options.pipelineCoolDownMs, 'a pipelined request waited behind a slow response');
    for (const handler of moved) handler.upstreamFailed(conn, UpstreamFailure.Unanswered, 'waited behind a slow response');
  }

  /** False when the backend was off for that long already. */
  private pipelineOff(backend: Backend, until: number, reason: string): boolean {
    if (backend.pipelineOffUntil >= until) return false;
    backend.pipelineOffUntil = until;
    backend.batch = null;
    this.onPipelineOff(backend, reason);
    return true;
  }

  /** Closes the idle sockets of a backend that left the routing table. */
  closeIdle(backend: Backend): void {
    const idle = backend.idle as UpstreamConnection[];
    while (idle.length > 0) this.destroy(idle[idle.length - 1]);
  }

  close(conn: UpstreamConnection): void {
    if (conn.state === State.Closed) return;
    conn.state = State.Closed;
    conn.handler = null;
    conn.outgoing = '';
    if (conn.backend.batch === conn) conn.backend.batch = null;
    this.live.delete(conn);
    conn.socket.destroy();
  }

  shutdown(): void {
    clearInterval(this.sweepTimer);
    for (const conn of [...this.live]) this.destroy(conn);
  }

  private open(backend: Backend, now: number): UpstreamConnection {
    const conn = new UpstreamConnection(this, backend, now);
    this.live.add(conn);
    return conn;
  }

  private sweep(now: number): void {
    const { connectTimeoutMs, responseTimeoutMs, idleTimeoutMs, pipelineStallMs } = this.options;
    for (const conn of this.live) {
      if (conn.state === State.Connecting) {
        if (now - conn.since > connectTimeoutMs) this.fail(conn, UpstreamFailure.Connect, 'connect timeout');
      } else if (conn.state === State.Busy) {
        // Paused for a slow client: the silence is ours, not the app's.
        if (!conn.paused && now - conn.lastActivity > responseTimeoutMs) {
          this.fail(
            conn,
            conn.headReceived ? UpstreamFailure.ClosedDuringResponse : UpstreamFailure.Timeout,
            'backend timeout',
          );
        } else if (conn.queue.length > 1 && conn.sentAt[0] !== 0 && now - conn.sentAt[0] > pipelineStallMs) {
          this.unstall(conn, now);
        }
      } else if (conn.state === State.Idle && now - conn.since > idleTimeoutMs) {
        this.destroy(conn);
      }
    }
  }
}

/** One write of the request heads queued on `conn`. */
function writeOutgoing(conn: UpstreamConnection, now: number): void {
  const data = conn.outgoing;
  if (data === '') return;
  conn.outgoing = '';
  if (conn.state === State.Closed) return;
  const sentAt = conn.sentAt;
  for (let k = sentAt.length - 1; k >= 0 && sentAt[k] === 0; k--) sentAt[k] = now;
  conn.lastActivity = now;
  conn.socket.write(data);
}

function removeIdle(conn: UpstreamConnection): void {
  const idle = conn.backend.idle as UpstreamConnection[];
  const i = idle.indexOf(conn);
  if (i !== -1) idle.splice(i, 1);
}
