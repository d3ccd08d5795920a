// WebSocket proxying. An upgrade request is routed like any request; the
// router sends its own upgrade request to the chosen endpoint, and only once
// the app answered 101 is the client upgraded (uWS res.upgrade). From then on
// messages are relayed both ways: uWebSockets.js on the client side, the
// router's own client framing (app_link.ts) on the app side.
//
// The upgrade towards the app is written by hand on a plain `net` socket (one
// prebuilt request head, the 101 checked here), and the socket then carries
// AppLink's frames: one masked frame per message in one write, frames parsed
// straight off the socket's chunks. (The `ws` package did this job first; its
// two writes per message and its stream per socket cost about a third of the
// router's CPU on small echoes, and its HTTP machinery ~10 KiB per tunnel.)
//
// Choices forced by uWebSockets.js 20.30 (see /work/shared/uws-notes.md):
// - A uWS WebSocket cannot stop reading (no pause/resume for WebSockets; the
//   HttpResponse's pause is gone after the upgrade). A client that sends
//   faster than its app reads therefore cannot be slowed down: the router
//   keeps relaying until the app's socket holds `overflowLimit` bytes, then
//   closes the client with 1013 (Try Again Later). Memory stays bounded. The
//   other direction (app -> client) has real backpressure: the app's socket is
//   paused while the client's buffered amount is above 1 MiB and resumed from
//   uWS's drain handler.
// - uWS's own idleTimeout is capped (and its resolution is 4 s): it is off,
//   and one shared sweep timer closes tunnels idle for --ws-idle-timeout.
// - maxBackpressure must be 0: with a limit, uWS silently DROPS messages sent
//   past it (send() returns 2), which a relay must never do.
// - uWS answers client pings itself and its JS API cannot send a pong. So:
//   client pings are answered by the router (not forwarded); the app's pings
//   are forwarded to the client and the client's pongs back to the app (the
//   app-side socket does not answer pings itself), so an app's heartbeat sees
//   the real client; the app's pongs are dropped.
// - uWS.js copies the user data's own properties onto the WebSocket object:
//   the user data is `{ tunnel }`.
// - After ws.end(), uWS gives the client a few seconds (4 s timer ticks) to
//   take what still waits in its buffer, then drops the socket: a slow client
//   lost the tail of what the app sent and saw 1006. When the app closes, the
//   client's close therefore waits until uWS's buffer is empty (drain handler).
// - A message over --ws-max-payload-mb from a client makes uWS drop the
//   connection without a close frame (the client sees 1006).
// Messages are relayed whole (fragments reassembled on either side), and each
// hop negotiates its own extensions: permessage-deflate is off on both hops,
// so no Sec-WebSocket-Extensions reach either end.

import { createHash, randomBytes, randomFillSync, randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import * as net from 'node:net';
import type { HttpRequest, HttpResponse, us_socket_context_t, WebSocket as UwsWebSocket, WebSocketBehavior } from 'uWebSockets.js';
import { AppLink, LINK_OPEN, type AppLinkEvents } from './app_link';
import type { Logger } from '../../bus/log';
import type { Registry } from '../registry/registry';
import type { Backend } from '../route/backend';
import { Endpoint, type EndpointPool } from '../route/pool';
import type { RouterStats } from '../varz/varz';
import { connectionListedHeaders, isHopByHop } from './hop_by_hop';
import type { ProxySettings } from './proxy';
import { clientAddress, forwardedFor, forwardedProto, RequestHeadScan } from './request_head';
import { EndpointChooser } from './endpoint_choice';
import { FailureLog } from './failure_log';
import { RouterErrorKind, routerErrorBodyBytes, routerErrorCode, routerErrorStatus, writeRouterError } from './router_error';
import { affinityCookie, vcapCookieFor, VCAP_ID } from './sticky';

const KiB = 1024;
const MiB = 1024 * KiB;

/** The app's socket is paused while the client has more than this waiting to be sent to it. */
export const CLIENT_HIGH_WATER = 1 * MiB;
/** ... and resumed once uWS drained the client below this. */
export const CLIENT_LOW_WATER = 256 * KiB;
/** A refusal from the app (non-101) is passed on with its body up to this size. */
const REFUSAL_BODY_LIMIT = 64 * KiB;
/** Largest response head accepted from an app. */
const RESPONSE_HEAD_LIMIT = 80 * KiB;
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export interface WebSocketOptions {
  /** Largest message relayed either way; a bigger one closes the connection. */
  maxPayloadBytes: number;
  /** Tunnels without a message (or ping/pong) either way for this long are closed; 0: never. */
  idleTimeoutMs: number;
  /** Longest wait for the TCP connection to an app (then the next endpoint is tried). */
  connectTimeoutMs: number;
  /** Longest wait for the app's answer to the upgrade once connected (then 504). */
  handshakeTimeoutMs: number;
  /**
   * Bytes the app's socket may hold unsent before its client is closed with
   * 1013 (uWS cannot stop reading a client). Default max(2 x maxPayload, 8 MiB).
   */
  overflowLimitBytes?: number;
}

export type WebSocketFigures = Pick<WebSocketStats, (typeof WEBSOCKET_FIGURES)[number]>;
const WEBSOCKET_FIGURES = ['open', 'total', 'bytesIn', 'bytesOut', 'upgradesFailed', 'idleTimeouts', 'overflowCloses'] as const;

/** /varz's names for the counters. */
export function webSocketVarz(f: WebSocketFigures): Record<string, number> {
  return {
    open: f.open,
    total: f.total,
    bytes_in: f.bytesIn,
    bytes_out: f.bytesOut,
    upgrades_failed: f.upgradesFailed,
    idle_timeouts: f.idleTimeouts,
    overflow_closes: f.overflowCloses,
  };
}

/** Counters for /varz and /metrics; plain fields, bumped on the relay path. */
export class WebSocketStats {
  /** Tunnels open now. */
  open = 0;
  /** Tunnels ever opened (101 sent to the client). */
  total = 0;
  /** Message payload bytes relayed client -> app. */
  bytesIn = 0;
  /** Message payload bytes relayed app -> client. */
  bytesOut = 0;
  /** Upgrade requests answered with anything but 101 (router errors, app refusals, clients gone). */
  upgradesFailed = 0;
  /** Tunnels closed by --ws-idle-timeout. */
  idleTimeouts = 0;
  /** Tunnels closed because the app did not read what its client sent (1013). */
  overflowCloses = 0;

  /** The counters as a plain object (posted between threads, added up for /varz). */
  figures(): WebSocketFigures {
    return { ...this };
  }

  /** Adds another thread's counters to these. */
  add(other: WebSocketFigures): void {
    for (const key of WEBSOCKET_FIGURES) this[key] += other[key];
  }
}

/**
 * One upgrade request, delivered once to `onRecord`: at the close of a tunnel
 * (status 101), or when the upgrade was answered otherwise (closeCode null).
 * For the access log (router/accesslog: `AccessLog.websocket`).
 */
export interface WebSocketRecord {
  /** Epoch ms the upgrade request arrived. */
  startedAt: number;
  method: 'GET';
  /** Host header as the client sent it. */
  host: string;
  /** Path and query as the client sent them. */
  path: string;
  /** 101 for a tunnel; otherwise what the client got (499: it left first). */
  status: number;
  remoteAddress: string;
  userAgent: string;
  referer: string;
  /** X-Forwarded-For and X-Forwarded-Proto as sent (or as they would have been sent) to the app. */
  forwardedFor: string;
  forwardedProto: string;
  /** X-Vcap-Request-Id sent to the app ('' when no endpoint was chosen). */
  requestId: string;
  /** `host:port` of the endpoint ('' when none was chosen). */
  backend: string;
  appId: string;
  instanceIndex: string;
  instanceId: string;
  /** Message payload bytes client -> app. */
  bytesFromClient: number;
  /** Message payload bytes app -> client (for a refused upgrade: the body of the refusal). */
  bytesToClient: number;
  /** From the upgrade request to the close (or to the refusal). */
  durationMs: number;
  /** Close code as the closing side sent it (1005: none, 1006: connection lost); null when no tunnel opened. */
  closeCode: number | null;
  closeReason: string;
  closedBy: 'client' | 'app' | 'router' | null;
  /** X-Cf-Routererror of a refusal the router made itself. */
  routerError: string | undefined;
}

// ---------------------------------------------------------------------------
// Pure helpers (unit-tested in websocket.test.ts).

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The subprotocols a client asked for (duplicates dropped), or undefined when the header is malformed. */
export function parseSubprotocols(header: string): string[] | undefined {
  if (header.trim() === '') return [];
  const out: string[] = [];
  for (const raw of header.split(',')) {
    const p = raw.trim();
    if (!TOKEN.test(p)) return undefined;
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/**
 * The close to send one side for a close received from the other: a code,
 * `undefined` for a close frame without a code (1005 received), or `null`
 * for no close frame at all (1006: the connection was lost).
 */
export function relayedClose(code: number): number | undefined | null {
  if (code === 1006) return null;
  if (code === 1005 || code === 0) return undefined;
  return code;
}

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2). */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

export interface ResponseHead {
  status: number;
  reason: string;
  /** Names and values alternating, as the app sent them. */
  headers: string[];
}

/** An HTTP/1.x response head (status line and header lines, without the blank line); undefined when malformed. */
export function parseResponseHead(text: string): ResponseHead | undefined {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (m === null) return undefined;
  const headers: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return undefined;
    headers.push(name, line.slice(colon + 1).trim());
  }
  return { status: Number(m[1]), reason: m[2] ?? '', headers };
}

/** The value of header `lowerName` (all of them joined by ', '), or undefined. */
export function headerValue(headers: readonly string[], lowerName: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].toLowerCase() === lowerName) value = value === undefined ? headers[i + 1] : `${value}, ${headers[i + 1]}`;
  }
  return value;
}

/**
 * A chunked body from its raw bytes: the body once complete, null while more
 * is needed, undefined when the framing is invalid.
 */
export function decodeChunked(raw: Buffer): Buffer | null | undefined {
  const parts: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', pos, 'latin1');
    if (lineEnd === -1) return raw.length - pos > 1024 ? undefined : null;
    const sizeText = raw.toString('latin1', pos, lineEnd).split(';')[0].trim();
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) return undefined;
    const size = parseInt(sizeText, 16);
    pos = lineEnd + 2;
    if (size === 0) {
      // Trailers, up to the empty line.
      for (;;) {
        const end = raw.indexOf('\r\n', pos, 'latin1');
        if (end === -1) return null;
        if (end === pos) return Buffer.concat(parts);
        pos = end + 2;
      }
    }
    if (raw.length < pos + size + 2) return null;
    if (raw[pos + size] !== 13 || raw[pos + size + 1] !== 10) return undefined;
    parts.push(raw.subarray(pos, pos + size));
    pos += size + 2;
  }
}

/** Why an app's 101 is not acceptable, or undefined when it is. */
export function checkUpgradeResponse(headers: readonly string[], key: string, offered: readonly string[]): string | undefined {
  if (headerValue(headers, 'upgrade')?.toLowerCase() !== 'websocket') return 'no Upgrade: websocket';
  const connection = headerValue(headers, 'connection') ?? '';
  if (!connection.split(',').some((token) => token.trim().toLowerCase() === 'upgrade')) return 'no Connection: upgrade';
  if (headerValue(headers, 'sec-websocket-accept') !== acceptKey(key)) return 'wrong Sec-WebSocket-Accept';
  if (headerValue(headers, 'sec-websocket-extensions') !== undefined) return 'an extension nobody offered';
  const protocol = headerValue(headers, 'sec-websocket-protocol');
  if (protocol !== undefined && !offered.includes(protocol)) return `subprotocol ${JSON.stringify(protocol)} was not offered`;
  return undefined;
}

// ---------------------------------------------------------------------------

const enum Phase {
  /** Routed; an attempt to the app is under way. */
  Connecting,
  /** Upgraded: relaying. */
  Open,
  /** Over (refused, failed, aborted or closed). */
  Done,
}

const enum Failure {
  /** No TCP connection (refused, unreachable, connect timeout): the app saw nothing. Retry, cool down. */
  Connect,
  /** Connected, closed before any response byte: retry (an upgrade is a GET). */
  ClosedBeforeResponse,
  /** Connected, no (complete) response within the handshake timeout: 504. */
  Timeout,
  /** The app answered, but not with something the router can pass on: 502. */
  Invalid,
}

const enum Body {
  None,
  Length,
  Chunked,
  UntilClose,
}

const kTunnel = Symbol('tunnel');
/** The app side: first a plain socket for the handshake, then an AppLink (client framing) over it. */
const kAppLink = Symbol('appLink');
type HandshakeSocket = net.Socket & { [kTunnel]?: Tunnel; [kAppLink]?: AppLink };
type AppSocket = AppLink;

interface TunnelRef {
  tunnel: Tunnel;
}
type ClientSocket = UwsWebSocket<TunnelRef>;
function tunnelOf(ws: ClientSocket): Tunnel {
  return (ws as ClientSocket & TunnelRef).tunnel;
}

/** Client headers not sent on: made per hop (key, version, extensions) or by the router (protocol list, cookie). */
const NOT_FORWARDED = new Set(['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'cookie']);

/** Headers of the app's 101 never copied to the client: uWS writes its own, or they are per hop. */
function isOwn101Header(lower: string): boolean {
  return (
    isHopByHop(lower) ||
    lower === 'sec-websocket-accept' ||
    lower === 'sec-websocket-protocol' ||
    lower === 'sec-websocket-extensions' ||
    lower === 'content-length' ||
    lower === 'date' ||
    lower === 'uwebsockets'
  );
}

/** Headers of a refusal never copied to the client: per hop, or written by uWS. */
function isOwnRefusalHeader(lower: string): boolean {
  return isHopByHop(lower) || lower === 'content-length' || lower === 'date' || lower === 'uwebsockets';
}

/** End-to-end headers of a response: not hop-by-hop, not named by its Connection header, not `own`. */
function endToEnd(headers: readonly string[], own: (lower: string) => boolean): string[] {
  const connection = headerValue(headers, 'connection');
  const listed = connection === undefined ? null : connectionListedHeaders(connection);
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i].toLowerCase();
    if (own(lower) || (listed !== null && listed.includes(lower))) continue;
    out.push(headers[i], headers[i + 1]);
  }
  return out;
}

function statusLine(status: number, reason: string | undefined): string {
  return `${status} ${reason || STATUS_CODES[status] || 'Unknown'}`;
}

/**
 * Masks for frames to apps (RFC 6455 5.3: unpredictable), four bytes at a
 * time from a pool refilled by the CSPRNG.
 */
const maskPool = Buffer.alloc(8 * KiB);
let maskAt = maskPool.length;
function writeMask(into: Buffer, at: number): void {
  if (maskAt + 4 > maskPool.length) {
    randomFillSync(maskPool);
    maskAt = 0;
  }
  into[at] = maskPool[maskAt++]!;
  into[at + 1] = maskPool[maskAt++]!;
  into[at + 2] = maskPool[maskAt++]!;
  into[at + 3] = maskPool[maskAt++]!;
}

/** What is known of an upgrade request once it was read; kept for the record. */
class UpgradeRequest {
  readonly startedAt = Date.now();
  userAgent = '';
  referer = '';
  forwardedFor = '';
  forwardedProto = 'http';

  constructor(
    readonly host: string,
    readonly target: string,
    readonly remoteAddress: string,
  ) {}
}

/**
 * One proxied WebSocket, from routing to close (the client socket's
 * `tunnel`). The fields only the upgrade needs are dropped once the tunnel is
 * open, so an idle tunnel holds little.
 */
class Tunnel {
  phase = Phase.Connecting;
  client: ClientSocket | null = null;
  app: AppSocket | null = null;
  endpoint: Endpoint | null = null;
  /** The backend whose inFlight this tunnel holds (released once). */
  holding: Backend | null = null;
  appPaused = false;
  /** The app closed while the client still had data waiting in uWS: close once it is sent. */
  endWhenDrained = false;
  /** Idle sweeps since the last message or ping/pong either way. */
  idleTicks = 0;
  bytesFromClient = 0;
  bytesToClient = 0;
  requestId = '';
  status = 0;
  closeCode: number | null = null;
  closeReason = '';
  closedBy: WebSocketRecord['closedBy'] = null;
  routerError: string | undefined;

  // Upgrade phase only (see settle()).
  res: HttpResponse | null;
  context: us_socket_context_t | null;
  /** The client's Sec-WebSocket-Key. */
  clientKey: string;
  /** The subprotocols the client asked for. */
  protocols: string[];
  /** The request head for the app, up to the per-endpoint and per-attempt lines. */
  head: string;
  pool: EndpointPool | null;
  /** Route with session affinity: the instance the client's __VCAP_ID__ names, if registered. */
  named: Endpoint | null = null;
  tried: Backend[] | null = null;
  attempts = 0;
  /** The socket of the current attempt, until it is handed to `ws`. */
  socket: HandshakeSocket | null = null;
  /** The Sec-WebSocket-Key of the current attempt. */
  appKey = '';
  connected = false;
  /** Response bytes of the current attempt so far (head, then a refusal's body). */
  received: Buffer | null = null;
  response: ResponseHead | null = null;
  body = Body.None;
  bodyLength = 0;
  timer: NodeJS.Timeout | null = null;

  constructor(
    readonly proxy: WebSocketProxy,
    readonly request: UpgradeRequest,
    res: HttpResponse,
    context: us_socket_context_t,
    clientKey: string,
    protocols: string[],
    head: string,
    pool: EndpointPool,
    /** X-Cf-App-Instance named the endpoint: no other instance may serve it. */
    readonly pinned: boolean,
  ) {
    this.res = res;
    this.context = context;
    this.clientKey = clientKey;
    this.protocols = protocols;
    this.head = head;
    this.pool = pool;
  }

  /** Forgets everything only the upgrade needed. */
  settle(): void {
    this.res = null;
    this.context = null;
    this.clientKey = '';
    this.protocols = NONE;
    this.head = '';
    this.pool = null;
    this.named = null;
    this.tried = null;
    this.appKey = '';
    this.received = null;
    this.response = null;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
const NONE: string[] = [];
const EMPTY_BUFFER = Buffer.alloc(0);

/**
 * The WebSocket half of the router: `behavior()` goes to `app.ws('/*', ...)`.
 * `openCount`, `closeAll` and `stats` are what drain and /varz use (router.ts's
 * WebSocketControl); `onRecord` feeds the access log.
 */
export class WebSocketProxy {
  readonly stats = new WebSocketStats();
  /** Called once per upgrade request: at its close, or when it was refused. */
  onRecord: ((record: WebSocketRecord) => void) | null = null;

  private readonly scan = new RequestHeadScan();
  private readonly chooser: EndpointChooser;
  private readonly failures: FailureLog;
  /** Open tunnels (for the idle sweep and closeAll). */
  private readonly tunnels = new Set<Tunnel>();
  /** Tunnels still waiting for their app. */
  private readonly connecting = new Set<Tunnel>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly sweepIntervalMs: number;
  private readonly idleTicksToClose: number;
  private readonly overflowLimit: number;

  constructor(
    registry: Registry,
    private readonly settings: ProxySettings,
    private readonly routerStats: RouterStats,
    private readonly options: WebSocketOptions,
    private readonly log: Logger,
  ) {
    this.chooser = new EndpointChooser(registry, settings, routerStats);
    this.failures = new FailureLog(log, 'websocket upgrade failed');
    const idle = options.idleTimeoutMs;
    // One timer for all tunnels; a tunnel closes between idle and idle + one interval.
    this.sweepIntervalMs = idle > 0 ? Math.min(15_000, Math.max(250, Math.floor(idle / 4))) : 0;
    this.idleTicksToClose = idle > 0 ? Math.ceil(idle / this.sweepIntervalMs) : 0;
    this.overflowLimit = options.overflowLimitBytes ?? Math.max(2 * options.maxPayloadBytes, 8 * MiB);
  }

  /** The uWS behaviour for `app.ws('/*', ...)`. */
  behavior(): WebSocketBehavior<TunnelRef> {
    return {
      maxPayloadLength: this.options.maxPayloadBytes,
      // Off: uWS caps it below what --ws-idle-timeout allows; the sweep does it.
      idleTimeout: 0,
      // 0 = no limit. With a limit uWS drops messages; the relay pauses the app instead.
      maxBackpressure: 0,
      closeOnBackpressureLimit: 0,
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => this.onUpgrade(res, req, context),
      open: (ws) => this.onClientOpen(ws),
      message: (ws, message, isBinary) => this.onClientMessage(ws, message, isBinary),
      drain: (ws) => this.onClientDrain(ws),
      close: (ws, code, message) => this.onClientClose(ws, code, message),
      // uWS has answered it already; it only shows the client is alive.
      ping: (ws) => {
        tunnelOf(ws).idleTicks = 0;
      },
      pong: (ws, message) => this.onClientPong(ws, message),
    };
  }

  /** Tunnels open now. */
  get openCount(): number {
    return this.tunnels.size;
  }

  /**
   * Closes every open tunnel with `code` and `reason` (client and app both get
   * them) and refuses the upgrades still waiting for an app with 503.
   * Returns how many it closed.
   */
  closeAll(code = 1001, reason = 'router shutting down'): number {
    let n = 0;
    for (const t of [...this.connecting]) {
      this.abandonAttempt(t);
      this.refuse(t, 503, undefined, `503 Service Unavailable: ${reason}\n`, null, true);
      n++;
    }
    for (const t of [...this.tunnels]) {
      t.closedBy = 'router';
      this.closeTunnel(t, code, reason);
      n++;
    }
    return n;
  }

  /** Stops the idle sweep (it restarts with the next tunnel). */
  stop(): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  // ---------------------------------------------------------------------------
  // Upgrade: route exactly like an HTTP request, then connect to the app.

  private onUpgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    this.routerStats.requests++;
    // Set once routed; until then the handler answers synchronously.
    let tunnel: Tunnel | null = null;
    res.onAborted(() => {
      if (tunnel !== null) this.onClientAborted(tunnel);
    });

    // Everything of `req` must be read now.
    const scan = this.scan;
    scan.reset();
    req.forEach(scan.visit);
    const path = req.getUrl();
    const query = req.getQuery();
    const request = new UpgradeRequest(
      scan.host,
      query === undefined || query === '' ? path : `${path}?${query}`,
      clientAddress(res),
    );
    const sanitize = this.settings.sanitizeForwarded;
    request.forwardedFor = forwardedFor(scan.forwardedFor, request.remoteAddress, sanitize);
    request.forwardedProto = forwardedProto(scan.forwardedProto, sanitize);

    // The client's end-to-end headers, as lines for the app; Host unchanged.
    let clientKey = '';
    let protocolHeader = '';
    let lines = '';
    const listed = scan.connection === '' ? null : connectionListedHeaders(scan.connection);
    for (let i = 0; i < scan.count; i++) {
      const name = scan.names[i];
      const value = scan.values[i];
      if (NOT_FORWARDED.has(name)) {
        if (name === 'sec-websocket-key') clientKey = value;
        else if (name === 'sec-websocket-protocol') protocolHeader = protocolHeader === '' ? value : `${protocolHeader}, ${value}`;
        continue;
      }
      if (listed !== null && listed.includes(name)) continue;
      if (name === 'user-agent') request.userAgent = value;
      else if (name === 'referer') request.referer = value;
      lines += name + ': ' + value + '\r\n';
    }

    if (this.settings.draining) return this.refuseNow(res, request, 503, '503 Service Unavailable: the router is shutting down.\n');
    if (scan.headBytes + request.target.length > this.settings.maxHeaderBytes) return this.failNow(res, request, RouterErrorKind.HeadersTooLarge);
    // An upgrade request has no body; one that announces a body cannot be trusted.
    if (scan.transferEncoding !== '' || (scan.contentLength !== '' && scan.contentLength !== '0')) {
      return this.failNow(res, request, RouterErrorKind.BadRequest);
    }
    const protocols = parseSubprotocols(protocolHeader);
    if (protocols === undefined) return this.failNow(res, request, RouterErrorKind.BadRequest);
    // Look up, and pick: the pinned instance, the sticky one, or the balancer's.
    const chosen = this.chooser.choose(request.host, path, scan.appInstance, scan.cookie);
    if (!(chosen instanceof Endpoint)) return this.failNow(res, request, chosen);
    const pool = this.chooser.pool!;
    const endpoint = chosen;
    const pinned = scan.appInstance !== '';

    // The head for the app; X-CF-* and the key follow on each attempt.
    const requestId = randomUUID();
    const head =
      `GET ${request.target} HTTP/1.1\r\n` +
      lines +
      (scan.cookie === '' ? '' : `cookie: ${scan.cookie}\r\n`) +
      (protocols.length === 0 ? '' : `sec-websocket-protocol: ${protocols.join(', ')}\r\n`) +
      `x-forwarded-for: ${request.forwardedFor}\r\n` +
      `x-forwarded-proto: ${request.forwardedProto}\r\n` +
      `x-request-start: ${scan.requestStart === '' ? request.startedAt : scan.requestStart}\r\n` +
      `x-vcap-request-id: ${requestId}\r\n` +
      'connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n';
    const t = new Tunnel(this, request, res, context, clientKey, protocols, head, pool, pinned);
    t.requestId = requestId;
    t.named = this.chooser.named;
    tunnel = t;
    this.connecting.add(t);
    this.attempt(t, endpoint);
  }

  /** A router error answered inside the upgrade handler (no cork needed). */
  private failNow(res: HttpResponse, request: UpgradeRequest, kind: RouterErrorKind): void {
    const status = writeRouterError(res, kind, request.host, false);
    if (status !== 503) this.routerStats.badRequests++;
    this.refused(request, status, routerErrorBodyBytes(kind, request.host, false), routerErrorCode(kind));
  }

  private refuseNow(res: HttpResponse, request: UpgradeRequest, status: number, body: string): void {
    res.writeStatus(statusLine(status, undefined));
    res.writeHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end(body, true);
    this.refused(request, status, Buffer.byteLength(body), undefined);
  }

  /** Counts and records an upgrade refused before any endpoint was chosen. */
  private refused(request: UpgradeRequest, status: number, bodyBytes: number, routerError: string | undefined): void {
    this.routerStats.countResponse(status);
    this.stats.upgradesFailed++;
    if (this.onRecord === null) return;
    this.deliver({
      startedAt: request.startedAt,
      method: 'GET',
      host: request.host,
      path: request.target,
      status,
      remoteAddress: request.remoteAddress,
      userAgent: request.userAgent,
      referer: request.referer,
      forwardedFor: request.forwardedFor,
      forwardedProto: request.forwardedProto,
      requestId: '',
      backend: '',
      appId: '',
      instanceIndex: '',
      instanceId: '',
      bytesFromClient: 0,
      bytesToClient: bodyBytes,
      durationMs: Date.now() - request.startedAt,
      closeCode: null,
      closeReason: '',
      closedBy: null,
      routerError,
    });
  }

  // ---------------------------------------------------------------------------
  // The handshake with the app, on a plain socket.

  private attempt(t: Tunnel, endpoint: Endpoint): void {
    t.endpoint = endpoint;
    t.attempts++;
    t.connected = false;
    t.received = null;
    t.response = null;
    const backend = endpoint.backend;
    if (t.tried !== null && !t.tried.includes(backend)) t.tried.push(backend);
    // A WebSocket holds its backend for its whole life, as in gorouter: least-connection
    // sees it, and --max-conns-per-backend counts it.
    backend.inFlight++;
    t.holding = backend;
    t.appKey = randomBytes(16).toString('base64');
    const socket: HandshakeSocket = net.connect({
      port: backend.port,
      host: backend.host,
      onread: { buffer: appReadBuffer, callback: appSocketOnRead as (nread: number, buf: Uint8Array) => boolean },
    });
    socket[kTunnel] = t;
    t.socket = socket;
    socket.once('connect', onHandshakeConnect);
    socket.on('error', onHandshakeError);
    socket.on('close', onHandshakeClose);
    t.timer = setTimeout(() => {
      if (t.socket === socket) this.attemptFailed(t, Failure.Connect, 'connect timeout');
    }, this.options.connectTimeoutMs);
  }

  handshakeConnected(t: Tunnel, socket: HandshakeSocket): void {
    t.connected = true;
    if (t.timer !== null) clearTimeout(t.timer);
    t.timer = setTimeout(() => {
      if (t.socket === socket) this.attemptFailed(t, Failure.Timeout, 'no upgrade response in time');
    }, this.options.handshakeTimeoutMs);
    socket.setNoDelay(true);
    socket.write(`${t.head}${t.endpoint!.headerLines}sec-websocket-key: ${t.appKey}\r\n\r\n`);
  }

  handshakeData(t: Tunnel, socket: HandshakeSocket, chunk: Buffer): void {
    let buffered = t.received === null ? chunk : Buffer.concat([t.received, chunk]);
    // Response heads: interim 1xx ones are skipped.
    while (t.response === null) {
      const end = buffered.indexOf('\r\n\r\n', 0, 'latin1');
      if (end === -1) {
        if (buffered.length > RESPONSE_HEAD_LIMIT) return this.attemptFailed(t, Failure.Invalid, 'response head too large');
        t.received = buffered;
        return;
      }
      const response = parseResponseHead(buffered.toString('latin1', 0, end));
      if (response === undefined) return this.attemptFailed(t, Failure.Invalid, 'malformed response head');
      buffered = buffered.subarray(end + 4);
      if (response.status === 101) {
        const problem = checkUpgradeResponse(response.headers, t.appKey, t.protocols);
        if (problem !== undefined) return this.attemptFailed(t, Failure.Invalid, problem);
        return this.appAccepted(t, socket, response, buffered);
      }
      if (response.status >= 100 && response.status < 200) continue;
      t.response = response;
      const transferEncoding = headerValue(response.headers, 'transfer-encoding');
      const contentLength = headerValue(response.headers, 'content-length');
      if (response.status === 204 || response.status === 304) t.body = Body.None;
      else if (transferEncoding !== undefined) t.body = /(^|,)\s*chunked\s*$/i.test(transferEncoding) ? Body.Chunked : Body.UntilClose;
      else if (contentLength !== undefined && /^\d{1,15}$/.test(contentLength)) {
        t.body = Body.Length;
        t.bodyLength = Number(contentLength);
      } else t.body = Body.UntilClose;
    }
    t.received = buffered;
    this.refusalBody(t, false);
  }

  /** Reads an app's refusal up to its end (or REFUSAL_BODY_LIMIT), then answers the client with it. */
  private refusalBody(t: Tunnel, closed: boolean): void {
    const raw = t.received ?? EMPTY_BUFFER;
    // Chunk framing may add a little to the limit.
    const overLimit = raw.length > REFUSAL_BODY_LIMIT + 4 * KiB;
    /** The body; null: more to come; undefined: too big to hold. */
    let body: Buffer | null | undefined;
    switch (t.body) {
      case Body.None:
        body = EMPTY_BUFFER;
        break;
      case Body.Length:
        body = t.bodyLength > REFUSAL_BODY_LIMIT ? undefined : raw.length >= t.bodyLength ? raw.subarray(0, t.bodyLength) : null;
        break;
      case Body.Chunked: {
        const decoded = decodeChunked(raw);
        if (decoded === undefined) return this.attemptFailed(t, Failure.Invalid, 'bad chunked body');
        body = decoded === null && overLimit ? undefined : decoded;
        break;
      }
      case Body.UntilClose:
        body = overLimit ? undefined : closed ? raw : null;
        break;
    }
    if (body === null) {
      if (closed) this.attemptFailed(t, Failure.Invalid, 'refusal cut short');
      return; // more to come
    }
    const tooBig = body === undefined || body.length > REFUSAL_BODY_LIMIT;
    const response = t.response!;
    this.abandonAttempt(t);
    const headers = endToEnd(
      response.headers,
      // A body too big to hold is dropped, and with it the headers describing it.
      tooBig ? (lower) => isOwnRefusalHeader(lower) || lower === 'content-type' || lower === 'content-encoding' : isOwnRefusalHeader,
    );
    if (tooBig) this.log.info('websocket refusal body dropped', { host: t.request.host, status: response.status });
    this.refuse(t, response.status, response.reason, tooBig ? EMPTY_BUFFER : body!, headers, false);
  }

  handshakeClosed(t: Tunnel, error: (Error & { code?: string }) | undefined): void {
    const detail = error === undefined ? 'connection closed' : (error.code ?? error.message);
    if (!t.connected) this.attemptFailed(t, Failure.Connect, detail);
    else if (t.response !== null) this.refusalBody(t, true);
    else if (t.received === null) this.attemptFailed(t, Failure.ClosedBeforeResponse, detail);
    else this.attemptFailed(t, Failure.Invalid, `${detail} in the response head`);
  }

  /** The app accepted: its socket goes to `ws` (client framing), the client is upgraded. */
  private appAccepted(t: Tunnel, socket: HandshakeSocket, response: ResponseHead, rest: Buffer): void {
    const res = t.res!;
    this.connecting.delete(t);
    socket.removeListener('error', onHandshakeError);
    socket.removeListener('close', onHandshakeClose);
    socket[kTunnel] = undefined;
    t.socket = null;
    // Paused until the client is upgraded below; then `rest` (frames that came with the 101) is read first.
    socket.pause();
    const app = new AppLink(socket, rest, appLinkEvents, this.options.maxPayloadBytes, writeMask, true);
    app.owner = t;
    t.app = app;
    socket[kAppLink] = app;

    const headers = endToEnd(response.headers, isOwn101Header);
    const stickyCookie = this.stickyCookie(t, headers);
    const protocol = headerValue(response.headers, 'sec-websocket-protocol') ?? '';
    const key = t.clientKey;
    const context = t.context!;
    t.settle();
    t.status = 101;
    res.cork(() => {
      res.writeStatus('101 Switching Protocols');
      for (let i = 0; i < headers.length; i += 2) res.writeHeader(headers[i], headers[i + 1]);
      if (stickyCookie !== undefined) res.writeHeader('Set-Cookie', stickyCookie);
      // Runs onClientOpen synchronously.
      res.upgrade<TunnelRef>({ tunnel: t }, key, protocol, '', context);
    });
    if (t.client === null) {
      // Not seen with this uWS build (open runs inside upgrade); never leave an app hanging.
      this.log.warn('websocket upgrade did not open', { host: t.request.host });
      t.phase = Phase.Done;
      this.releaseBackend(t);
      this.detachApp(t);
      app.terminate();
      this.routerStats.countResponse(502);
      return;
    }
    app.start();
  }

  /** __VCAP_ID__ for a session cookie the app set in its 101, or for a route with affinity, as for HTTP responses. */
  private stickyCookie(t: Tunnel, headers: string[]): string | undefined {
    const endpoint = t.endpoint!;
    if (endpoint.instanceId === '' || t.pool === null) return undefined;
    if (t.pool.sessionAffinity) return endpoint === t.named ? undefined : affinityCookie(endpoint.instanceId, t.pool.contextPath, headers);
    let cookie: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i].toLowerCase() !== 'set-cookie') continue;
      if (headers[i + 1].startsWith(VCAP_ID + '=')) return undefined; // the app set it itself
      cookie ??= vcapCookieFor(headers[i + 1], this.settings.sessionCookies, endpoint.instanceId, t.pool.contextPath);
    }
    return cookie;
  }

  private onClientOpen(ws: ClientSocket): void {
    const t = tunnelOf(ws);
    t.client = ws;
    t.phase = Phase.Open;
    this.tunnels.add(t);
    this.stats.open++;
    this.stats.total++;
    this.routerStats.countResponse(101);
    this.routerStats.countApp(t.endpoint!.appId);
    if (this.sweepTimer === null && this.sweepIntervalMs > 0) {
      this.sweepTimer = setInterval(() => this.sweep(), this.sweepIntervalMs);
      this.sweepTimer.unref();
    }
  }

  /** A failed attempt: retry on another endpoint while that is safe, else answer the client. */
  private attemptFailed(t: Tunnel, failure: Failure, detail: string): void {
    if (t.phase !== Phase.Connecting) return;
    const endpoint = t.endpoint!;
    this.abandonAttempt(t);
    if (failure === Failure.Connect) endpoint.backend.failedAt = Date.now();
    if ((failure === Failure.Connect || failure === Failure.ClosedBeforeResponse) && !t.pinned) {
      const next = this.nextEndpoint(t, endpoint.backend);
      if (next !== undefined) {
        this.routerStats.retries++;
        this.attempt(t, next);
        return;
      }
    }
    this.failures.failed(endpoint.backend.key, t.request.host, t.attempts, detail);
    this.routerStats.badGateways++;
    const kind = failure === Failure.Timeout ? RouterErrorKind.EndpointTimeout : RouterErrorKind.EndpointFailure;
    const res = t.res;
    t.routerError = routerErrorCode(kind);
    this.finishUpgrade(t, routerErrorStatus(kind), routerErrorBodyBytes(kind, t.request.host, false));
    if (res !== null) res.cork(() => writeRouterError(res, kind, t.request.host, false));
  }

  private nextEndpoint(t: Tunnel, failed: Backend): Endpoint | undefined {
    if (t.attempts >= this.settings.maxAttempts || t.pool === null) return undefined;
    t.tried ??= [failed];
    const pool = t.pool;
    return this.chooser.retry(pool, t.tried);
  }

  /** Drops the current attempt's socket and its hold on the backend. */
  private abandonAttempt(t: Tunnel): void {
    this.releaseBackend(t);
    if (t.timer !== null) {
      clearTimeout(t.timer);
      t.timer = null;
    }
    const socket = t.socket;
    if (socket !== null) {
      t.socket = null;
      socket[kTunnel] = undefined;
      socket.destroy();
    }
  }

  /** Late events of the app socket find no tunnel from now on ('error' keeps its listener: nothing throws). */
  private detachApp(t: Tunnel): void {
    const app = t.app;
    if (app === null) return;
    t.app = null;
    app.owner = undefined;
  }

  private releaseBackend(t: Tunnel): void {
    if (t.holding !== null) {
      t.holding.inFlight--;
      t.holding = null;
    }
  }

  /**
   * Answers the client's upgrade with an HTTP response: the app's refusal
   * (with its headers), or the router's own (`headers` null: plain text).
   */
  private refuse(
    t: Tunnel,
    status: number,
    reason: string | undefined,
    body: string | Buffer,
    headers: string[] | null,
    closeConnection: boolean,
  ): void {
    const res = t.res;
    this.finishUpgrade(t, status, typeof body === 'string' ? Buffer.byteLength(body) : body.length);
    if (res === null) return;
    res.cork(() => {
      res.writeStatus(statusLine(status, reason));
      if (headers === null) res.writeHeader('Content-Type', 'text/plain; charset=utf-8');
      else for (let i = 0; i < headers.length; i += 2) res.writeHeader(headers[i], headers[i + 1]);
      res.end(body, closeConnection);
    });
  }

  /** The upgrade is over without a tunnel: count it and deliver its record. */
  private finishUpgrade(t: Tunnel, status: number, bodyBytes: number): void {
    this.connecting.delete(t);
    t.phase = Phase.Done;
    t.status = status;
    t.bytesToClient = bodyBytes;
    t.settle();
    this.routerStats.countResponse(status);
    if (t.endpoint !== null) this.routerStats.countApp(t.endpoint.appId);
    this.stats.upgradesFailed++;
    this.deliver(this.record(t));
  }

  private onClientAborted(t: Tunnel): void {
    if (t.phase !== Phase.Connecting) return;
    this.abandonAttempt(t);
    t.res = null;
    this.routerStats.clientAborts++;
    this.finishUpgrade(t, 499, 0);
  }
  // ---------------------------------------------------------------------------
  // Relay.

  private onClientMessage(ws: ClientSocket, message: ArrayBuffer, isBinary: boolean): void {
    const t = tunnelOf(ws);
    t.idleTicks = 0;
    const n = message.byteLength;
    t.bytesFromClient += n;
    this.stats.bytesIn += n;
    const app = t.app;
    if (app === null || app.readyState !== LINK_OPEN) return;
    // Masked into a frame of its own before send() returns: uWS may reuse `message` afterwards.
    app.send(new Uint8Array(message), isBinary);
    if (app.bufferedAmount > this.overflowLimit) {
      // uWS cannot stop reading this client, and its app is not reading: cut the tunnel.
      this.stats.overflowCloses++;
      this.log.warn('websocket closed: the app does not read what its client sends', {
        host: t.request.host,
        backend: t.endpoint!.backend.key,
        buffered: app.bufferedAmount,
      });
      t.closedBy = 'router';
      this.detachApp(t);
      app.terminate();
      this.closeTunnel(t, 1013, 'app not reading');
    }
  }

  onAppMessage(t: Tunnel, app: AppSocket, data: Buffer, isBinary: boolean): void {
    t.idleTicks = 0;
    const n = data.length;
    t.bytesToClient += n;
    this.stats.bytesOut += n;
    const client = t.client;
    if (client === null) return;
    // 0: it waits in uWS's buffer (2, dropped, cannot happen: maxBackpressure is 0).
    if (client.send(data, isBinary) === 0 && !t.appPaused && client.getBufferedAmount() > CLIENT_HIGH_WATER) {
      t.appPaused = true;
      app.pause();
    }
  }

  private onClientDrain(ws: ClientSocket): void {
    const t = tunnelOf(ws);
    if (t.endWhenDrained) {
      if (ws.getBufferedAmount() === 0) this.endClient(t, ws);
      return;
    }
    if (t.appPaused && ws.getBufferedAmount() < CLIENT_LOW_WATER) {
      t.appPaused = false;
      t.app?.resume();
    }
  }

  onAppPing(t: Tunnel, data: Buffer): void {
    t.idleTicks = 0;
    t.client?.ping(data);
  }

  private onClientPong(ws: ClientSocket, message: ArrayBuffer): void {
    const t = tunnelOf(ws);
    t.idleTicks = 0;
    const app = t.app;
    if (app !== null && app.readyState === LINK_OPEN) app.pong(new Uint8Array(message));
  }

  // ---------------------------------------------------------------------------
  // Close, both ways. Every close of an open tunnel ends in onClientClose.

  /** Closes the client with `code` (its close handler then closes the app the same way). */
  private closeTunnel(t: Tunnel, code: number, reason: string): void {
    const client = t.client;
    if (client === null) return;
    if (t.closeCode === null) {
      t.closeCode = code;
      t.closeReason = reason;
    }
    client.end(code, reason);
  }

  private onClientClose(ws: ClientSocket, code: number, message: ArrayBuffer): void {
    const t = tunnelOf(ws);
    t.client = null;
    let reason: Buffer | string = message.byteLength === 0 ? EMPTY_BUFFER : Buffer.copyBytesFrom(new Uint8Array(message));
    if (t.closeCode === null) {
      t.closedBy = 'client';
      t.closeCode = code === 0 ? 1005 : code;
      t.closeReason = reason.toString();
    } else {
      reason = t.closeReason;
    }
    const app = t.app;
    if (app !== null) {
      this.detachApp(t);
      closeApp(app, t.closeCode, reason);
    }
    if (t.phase !== Phase.Open) return;
    t.phase = Phase.Done;
    this.tunnels.delete(t);
    this.stats.open--;
    this.releaseBackend(t);
    this.deliver(this.record(t));
    if (this.tunnels.size === 0) this.stop();
  }

  onAppClose(t: Tunnel, code: number, reason: Buffer): void {
    this.detachApp(t);
    const client = t.client;
    if (client === null) return;
    if (t.closeCode === null) {
      t.closedBy = 'app';
      t.closeCode = code;
      t.closeReason = reason.toString();
    }
    // uWS's end() drops whatever still waits in its buffer: what the app sent goes out first.
    if (client.getBufferedAmount() > 0) t.endWhenDrained = true;
    else this.endClient(t, client);
  }

  /** Closes the client the way the app closed (t.closeCode, t.closeReason). */
  private endClient(t: Tunnel, client: ClientSocket): void {
    t.endWhenDrained = false;
    const relayed = relayedClose(t.closeCode!);
    if (relayed === null) client.close();
    else if (relayed === undefined) client.end();
    else client.end(relayed, t.closeReason);
  }

  onAppError(t: Tunnel, error: Error): void {
    // 'close' follows.
    this.log.debug('websocket app error', { backend: t.endpoint?.backend.key, reason: error.message });
  }

  private sweep(): void {
    const limit = this.idleTicksToClose;
    for (const t of this.tunnels) {
      if (++t.idleTicks <= limit) continue;
      this.stats.idleTimeouts++;
      t.closedBy = 'router';
      this.closeTunnel(t, 1001, 'idle timeout');
    }
  }

  // ---------------------------------------------------------------------------
  // Records.

  private record(t: Tunnel): WebSocketRecord {
    const r = t.request;
    const e = t.endpoint;
    return {
      startedAt: r.startedAt,
      method: 'GET',
      host: r.host,
      path: r.target,
      status: t.status,
      remoteAddress: r.remoteAddress,
      userAgent: r.userAgent,
      referer: r.referer,
      forwardedFor: r.forwardedFor,
      forwardedProto: r.forwardedProto,
      requestId: t.requestId,
      backend: e === null ? '' : e.backend.key,
      appId: e === null ? '' : e.appId,
      instanceIndex: e === null ? '' : e.instanceIndex,
      instanceId: e === null ? '' : e.instanceId,
      bytesFromClient: t.bytesFromClient,
      bytesToClient: t.bytesToClient,
      durationMs: Date.now() - r.startedAt,
      closeCode: t.status === 101 ? t.closeCode : null,
      closeReason: t.closeReason,
      closedBy: t.status === 101 ? t.closedBy : null,
      routerError: t.routerError,
    };
  }

  private deliver(record: WebSocketRecord): void {
    const onRecord = this.onRecord;
    if (onRecord === null) return;
    try {
      onRecord(record);
    } catch (error) {
      this.log.error('websocket record callback failed', { reason: (error as Error).message });
    }
  }
}

/** Passes a client's close on to the app: same code and reason, as far as the protocol lets a client send them. */
function closeApp(app: AppLink, code: number, reason: Buffer | string): void {
  if (app.readyState !== LINK_OPEN) return;
  const relayed = relayedClose(code);
  if (relayed === null) app.terminate();
  else if (relayed === undefined) app.close();
  else app.close(relayed, reason); // a code no endpoint may send (1004, 1015, ...) goes as a close without one
}

// Listeners shared by every app socket (`this` is the socket): no closures per tunnel.

function onHandshakeConnect(this: HandshakeSocket): void {
  const t = this[kTunnel];
  if (t !== undefined) t.proxy.handshakeConnected(t, this);
}
/**
 * Every app socket reads into this one buffer (net's `onread`): no stream
 * machinery per read. During the handshake the bytes are copied (the head
 * may span reads); afterwards AppLink parses the view and copies only what
 * it keeps.
 */
const appReadBuffer = Buffer.allocUnsafe(256 * KiB);
function appSocketOnRead(this: HandshakeSocket, nread: number, buf: Buffer): boolean {
  const link = this[kAppLink];
  if (link !== undefined) {
    link.onRead(buf.subarray(0, nread));
    return true;
  }
  const t = this[kTunnel];
  if (t !== undefined) t.proxy.handshakeData(t, this, Buffer.from(buf.subarray(0, nread)));
  return true;
}
function onHandshakeError(this: HandshakeSocket, error: Error): void {
  const t = this[kTunnel];
  if (t !== undefined) t.proxy.handshakeClosed(t, error);
}
function onHandshakeClose(this: HandshakeSocket): void {
  const t = this[kTunnel];
  if (t !== undefined) t.proxy.handshakeClosed(t, undefined);
}
/** The app side's events, shared by every tunnel (the link's owner is its tunnel). */
const appLinkEvents: AppLinkEvents = {
  onError(link, error) {
    const t = link.owner as Tunnel | undefined;
    if (t !== undefined) t.proxy.onAppError(t, error);
  },
  onClose(link, code, reason) {
    const t = link.owner as Tunnel | undefined;
    if (t !== undefined) t.proxy.onAppClose(t, code, reason);
  },
  onMessage(link, data, isBinary) {
    const t = link.owner as Tunnel | undefined;
    if (t !== undefined) t.proxy.onAppMessage(t, link, data, isBinary);
  },
  onPing(link, data) {
    const t = link.owner as Tunnel | undefined;
    if (t !== undefined) t.proxy.onAppPing(t, data);
  },
};
