// The access log line of protocol.md ("Access log line"), gorouter's format:
//
//   shop.localhost - [2026-11-25T10:00:00.123Z] "GET /api?q=1 HTTP/1.1" 200 0 512 "-" "curl/8.0"
//   "127.0.0.1:5555" "127.0.0.1:61001" x_forwarded_for:"127.0.0.1" x_forwarded_proto:"http"
//   vcap_request_id:"<uuid>" response_time:0.012345 gorouter_time:0.000080 app_id:"<app-id>"
//   app_index:"0" instance_id:"<instance-id>" x_cf_routererror:"-"
//
// (one line). Every value that comes from a client or an app is escaped, so a
// hostile header can neither end the line nor close a quoted field early.

/** One finished request (or WebSocket), as the access log writes it. */
export interface AccessLogRecord {
  /** Host header as the client sent it. */
  host: string;
  /** Epoch ms when the request arrived. */
  startedAt: number;
  /** "GET /path?query HTTP/1.1" */
  requestLine: string;
  /** Status sent to the client; 101 for a WebSocket; 499 when the client left first. */
  status: number;
  /** Request body bytes received from the client (for a WebSocket: message bytes client -> app). */
  bytesReceived: number;
  /** Response body bytes sent to the client (for a WebSocket: message bytes app -> client). */
  bytesSent: number;
  referer: string;
  userAgent: string;
  /**
   * Client address. gorouter writes "ip:port"; uWebSockets.js 20.30 exposes
   * only the peer IP, so Skiff writes the IP alone.
   */
  clientAddress: string;
  /** "host:port" of the app instance, or "" when none was chosen. */
  backendAddress: string;
  /** X-Forwarded-For as sent to the app (the client's address appended). */
  forwardedFor: string;
  forwardedProto: string;
  vcapRequestId: string;
  /** Seconds from arrival to the last byte (WebSocket: to the close). */
  responseTimeSeconds: number;
  /** Seconds the router itself spent: response time minus the wait for the app's response head. */
  gorouterTimeSeconds: number;
  appId: string;
  appIndex: string;
  instanceId: string;
  /** X-Cf-Routererror sent with a router-answered error ("unknown_route", ...), else "". */
  routerError: string;
}

/** Characters that must not appear raw inside a quoted field (or the bare host). */
// eslint-disable-next-line no-control-regex
const UNSAFE = /["\\\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// eslint-disable-next-line no-control-regex
const UNSAFE_ALL = /["\\\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
/** The host is written bare: anything but visible ASCII is escaped as well. */
// eslint-disable-next-line no-control-regex
const UNSAFE_HOST = /[^\u0021\u0023-\u005b\u005d-\u007e]/;
// eslint-disable-next-line no-control-regex
const UNSAFE_HOST_ALL = /[^\u0021\u0023-\u005b\u005d-\u007e]/g;

function escapeChar(c: string): string {
  if (c === '"') return '\\"';
  if (c === '\\') return '\\\\';
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** A value for inside double quotes: `"` and `\` backslash-escaped, control characters as \xHH; empty is "-". */
export function quoted(value: string): string {
  if (value === '') return '"-"';
  return UNSAFE.test(value) ? `"${value.replace(UNSAFE_ALL, escapeChar)}"` : `"${value}"`;
}

/** The bare first field: no spaces, quotes or control characters survive unescaped; empty is "-". */
export function bareHost(value: string): string {
  if (value === '') return '-';
  return UNSAFE_HOST.test(value) ? value.replace(UNSAFE_HOST_ALL, escapeChar) : value;
}

function seconds(s: number): string {
  return (s > 0 ? s : 0).toFixed(6);
}

/** The whole line, without the trailing newline. */
export function formatAccessLogLine(r: AccessLogRecord): string {
  return (
    `${bareHost(r.host)} - [${new Date(r.startedAt).toISOString()}] ${quoted(r.requestLine)} ` +
    `${r.status} ${r.bytesReceived} ${r.bytesSent} ${quoted(r.referer)} ${quoted(r.userAgent)} ` +
    `${quoted(r.clientAddress)} ${quoted(r.backendAddress)} ` +
    `x_forwarded_for:${quoted(r.forwardedFor)} x_forwarded_proto:${quoted(r.forwardedProto)} ` +
    `vcap_request_id:${quoted(r.vcapRequestId)} ` +
    `response_time:${seconds(r.responseTimeSeconds)} gorouter_time:${seconds(r.gorouterTimeSeconds)} ` +
    `app_id:${quoted(r.appId)} app_index:${quoted(r.appIndex)} instance_id:${quoted(r.instanceId)} ` +
    `x_cf_routererror:${quoted(r.routerError)}`
  );
}

/**
 * The regular expression of one line, for tests and log tooling: groups in
 * order host, timestamp, request line, status, bytes received, bytes sent,
 * referer, user agent, client, backend, x_forwarded_for, x_forwarded_proto,
 * vcap_request_id, response_time, gorouter_time, app_id, app_index,
 * instance_id, x_cf_routererror. Quoted groups are still escaped.
 */
export const ACCESS_LOG_LINE =
  /^(\S+) - \[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+) (\d+) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)" x_forwarded_for:"((?:[^"\\]|\\.)*)" x_forwarded_proto:"((?:[^"\\]|\\.)*)" vcap_request_id:"((?:[^"\\]|\\.)*)" response_time:(\d+\.\d{6}) gorouter_time:(\d+\.\d{6}) app_id:"((?:[^"\\]|\\.)*)" app_index:"((?:[^"\\]|\\.)*)" instance_id:"((?:[^"\\]|\\.)*)" x_cf_routererror:"((?:[^"\\]|\\.)*)"$/;
