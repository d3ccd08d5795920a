import { connectionListedHeaders } from './hop_by_hop';

/** What the router does with a request header it reads from the client. */
const enum HeaderRole {
  /** Read by the router and re-sent (or not) in its own form. */
  Host = 1,
  ContentLength,
  TransferEncoding,
  Connection,
  ForwardedFor,
  ForwardedProto,
  RequestStart,
  AppInstance,
  /** Forwarded, and read for the sticky-session instance. */
  Cookie,
  /** Forwarded, and read: an event stream is never pipelined. */
  Accept,
  /** Hop-by-hop, answered by the server itself (Expect), or set only by the router: dropped. */
  Drop,
}

const ROLES = new Map<string, HeaderRole>([
  ['host', HeaderRole.Host],
  ['content-length', HeaderRole.ContentLength],
  ['transfer-encoding', HeaderRole.TransferEncoding],
  ['connection', HeaderRole.Connection],
  ['x-forwarded-for', HeaderRole.ForwardedFor],
  ['x-forwarded-proto', HeaderRole.ForwardedProto],
  ['x-request-start', HeaderRole.RequestStart],
  ['x-cf-app-instance', HeaderRole.AppInstance],
  ['cookie', HeaderRole.Cookie],
  ['accept', HeaderRole.Accept],
  ['keep-alive', HeaderRole.Drop],
  ['proxy-connection', HeaderRole.Drop],
  ['proxy-authorization', HeaderRole.Drop],
  ['te', HeaderRole.Drop],
  ['trailer', HeaderRole.Drop],
  ['upgrade', HeaderRole.Drop],
  // uWebSockets.js already answered "100 Continue"; the body follows anyway.
  ['expect', HeaderRole.Drop],
  // Set by the router for the chosen endpoint; a client's values are never trusted.
  ['x-vcap-request-id', HeaderRole.Drop],
  ['x-cf-applicationid', HeaderRole.Drop],
  ['x-cf-instanceindex', HeaderRole.Drop],
  ['x-cf-instanceid', HeaderRole.Drop],
]);

/**
 * The headers of one client request, read by uWS's req.forEach into reused
 * arrays (the request path runs one request at a time, synchronously), so
 * reading headers costs no closure and no per-request containers.
 */
export class RequestHeadScan {
  readonly names: string[] = [];
  readonly values: string[] = [];
  count = 0;
  /** Size of the header lines, to enforce the request head limit. */
  headBytes = 0;
  host = '';
  hostSeen = false;
  contentLength = '';
  repeatedLength = false;
  transferEncoding = '';
  connection = '';
  forwardedFor = '';
  forwardedProto = '';
  requestStart = '';
  appInstance = '';
  cookie = '';
  accept = '';

  /** Bound once; handed to req.forEach for every request. */
  readonly visit = (name: string, value: string): void => {
    // As on the wire: "name: value\r\n".
    this.headBytes += name.length + value.length + 4;
    const role = ROLES.get(name);
    if (role === undefined) {
      // The router's own header families are the router's to set; a client's are not trusted.
      if (name.charCodeAt(0) === 120 /* x */ && (name.startsWith('x-cf-') || name.startsWith('x-vcap-'))) return;
      this.names[this.count] = name;
      this.values[this.count] = value;
      this.count++;
      return;
    }
    switch (role) {
      case HeaderRole.Host:
        // Passed on unchanged, and keyed on for the lookup.
        this.host = value;
        this.hostSeen = true;
        this.names[this.count] = name;
        this.values[this.count] = value;
        this.count++;
        return;
      case HeaderRole.ContentLength:
        // Repeated even with equal values: RFC 9112 lets a server merge them, but a proxy that forwards one framing among several is what smuggling relies on.
        if (this.contentLength !== '') this.repeatedLength = true;
        this.contentLength = value.trim();
        return;
      case HeaderRole.TransferEncoding:
        this.transferEncoding = this.transferEncoding === '' ? value : `${this.transferEncoding}, ${value}`;
        return;
      case HeaderRole.Connection:
        this.connection = this.connection === '' ? value : `${this.connection}, ${value}`;
        return;
      case HeaderRole.ForwardedFor:
        this.forwardedFor = this.forwardedFor === '' ? value : `${this.forwardedFor}, ${value}`;
        return;
      case HeaderRole.ForwardedProto:
        if (this.forwardedProto === '') this.forwardedProto = value;
        return;
      case HeaderRole.RequestStart:
        if (this.requestStart === '') this.requestStart = value;
        return;
      case HeaderRole.AppInstance:
        this.appInstance = value;
        return;
      case HeaderRole.Accept:
        this.accept = this.accept === '' ? value : `${this.accept}, ${value}`;
        this.names[this.count] = name;
        this.values[this.count] = value;
        this.count++;
        return;
      case HeaderRole.Cookie:
        this.cookie = this.cookie === '' ? value : `${this.cookie}; ${value}`;
        this.names[this.count] = name;
        this.values[this.count] = value;
        this.count++;
        return;
      case HeaderRole.Drop:
        return;
    }
  };

  reset(): void {
    // Strings left in the arrays are overwritten by the next request; only the count matters.
    this.count = 0;
    this.headBytes = 0;
    this.host = '';
    this.hostSeen = false;
    this.contentLength = '';
    this.repeatedLength = false;
    this.transferEncoding = '';
    this.connection = '';
    this.forwardedFor = '';
    this.forwardedProto = '';
    this.requestStart = '';
    this.appInstance = '';
    this.cookie = '';
    this.accept = '';
  }

  /** The forwarded client headers as `name: value\r\n` lines, minus any the Connection header named. */
  headerLines(): string {
    let extraHopByHop: string[] | undefined;
    if (this.connection !== '') {
      const listed = connectionListedHeaders(this.connection);
      if (listed.length > 0) extraHopByHop = listed;
    }
    let lines = '';
    for (let i = 0; i < this.count; i++) {
      if (extraHopByHop !== undefined && extraHopByHop.includes(this.names[i])) continue;
      lines += this.names[i] + ': ' + this.values[i] + '\r\n';
    }
    return lines;
  }
}

export enum BodyFraming {
  None,
  Length,
  Chunked,
  /** A framing the router refuses: CL with TE, conflicting lengths, unknown codings. */
  Invalid,
}

/** How the request body is delimited, refusing anything a smuggling attack could exploit. */
export function requestBodyFraming(scan: RequestHeadScan): BodyFraming {
  if (scan.transferEncoding !== '') {
    if (scan.contentLength !== '') return BodyFraming.Invalid;
    return scan.transferEncoding.trim().toLowerCase() === 'chunked' ? BodyFraming.Chunked : BodyFraming.Invalid;
  }
  if (scan.contentLength === '') return BodyFraming.None;
  if (scan.repeatedLength || !/^\d{1,15}$/.test(scan.contentLength)) return BodyFraming.Invalid;
  return BodyFraming.Length;
}

/** `X-Cf-App-Instance: <app-id>:<index>`, or undefined when malformed. */
export function parseAppInstance(value: string): { appId: string; index: string } | undefined {
  const colon = value.indexOf(':');
  if (colon <= 0 || colon === value.length - 1 || value.indexOf(':', colon + 1) !== -1) return undefined;
  const appId = value.slice(0, colon).trim();
  const index = value.slice(colon + 1).trim();
  if (appId === '' || !/^\d+$/.test(index)) return undefined;
  return { appId, index };
}

/**
 * X-Forwarded-For towards the app: the client's value with its address
 * appended (trust, as gorouter and nginx do), or the address alone (sanitize).
 */
export function forwardedFor(clientValue: string, clientAddress: string, sanitize: boolean): string {
  return sanitize || clientValue === '' ? clientAddress : `${clientValue}, ${clientAddress}`;
}

/** X-Forwarded-Proto towards the app: the client's value when trusted, else the scheme the router saw. */
export function forwardedProto(clientValue: string, sanitize: boolean): string {
  return sanitize || clientValue === '' ? 'http' : clientValue;
}

/**
 * The peer IP of a uWS request (a getpeername each call, ~2 us: call it once
 * per request). Only valid inside the request handler.
 */
export function clientAddress(res: { getRemoteAddressAsText(): ArrayBuffer }): string {
  return Buffer.from(res.getRemoteAddressAsText()).toString('latin1');
}

const METHOD_NAMES: Record<string, string> = {
  get: 'GET',
  head: 'HEAD',
  post: 'POST',
  put: 'PUT',
  delete: 'DELETE',
  patch: 'PATCH',
  options: 'OPTIONS',
  trace: 'TRACE',
  connect: 'CONNECT',
};

/** This uWS build reports methods in lower case; apps expect them as sent (upper case by convention). */
export function canonicalMethod(method: string): string {
  return METHOD_NAMES[method] ?? method.toUpperCase();
}

/** RFC 9110 idempotent methods: safe to send again when no response began. */
export function isIdempotent(method: string): boolean {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
    case 'TRACE':
    case 'PUT':
    case 'DELETE':
      return true;
    default:
      return false;
  }
}

/**
 * Whether a request may share an app connection with others (upstream.ts):
 * GET, HEAD or OPTIONS without a body, the safe methods (RFC 9112 §9.3.2:
 * pipeline only requests that may be sent again when unanswered; PUT and
 * DELETE are idempotent too, but change state). Not the GETs that apps hold
 * open on purpose, which would stall whatever waits behind them, and which
 * are not safe to send twice in practice: event streams (`Accept:
 * text/event-stream`) and Engine.IO (socket.io) long-polling, whose server
 * drops a session that polls twice at once.
 */
export function isPipelinable(method: string, hasBody: boolean, query: string | undefined, accept: string): boolean {
  if (hasBody || (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS')) return false;
  if (query !== undefined && query.includes('transport=polling')) return false;
  return accept === '' || !accept.includes('text/event-stream');
}
