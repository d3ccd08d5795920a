// The narrow bus every role talks through, and its NATS implementation.
//
// What nats.js 2.29 offers, and what this module adds on top (checked in the
// library source, lib/nats-base-client):
// - Subscriptions have no pending limits, and there is no slow-consumer status
//   event. A callback subscription is dispatched synchronously from the socket
//   reader, so the client itself never queues messages: when handlers are slow,
//   TCP pushes back and the *server* buffers up to its per-client `max_pending`
//   (64 MB by default), then cuts the connection ("Slow Consumer Detected" in the
//   server log). That surfaces here as 'disconnect' followed by 'reconnect'.
// - The one place messages can pile up inside the process is a handler that
//   returns a promise and keeps working after returning. For those, this module
//   counts unsettled handler calls per subscription and enforces
//   maxPendingMessages / maxPendingBytes the way the Go and C clients do: above
//   the limit, messages are dropped, counted and reported once as 'slow-consumer'
//   until the backlog falls below the limit again.
// - nats.js ignores credentials in server URLs (it keeps only host:port), so
//   connectBus takes them out of the URL and passes them as user/pass or token.
// - With a user, replies and JetStream deliveries come to `_INBOX.<user>.`,
//   the only inbox that user may subscribe to (bus/permissions.ts).
// - A permission violation (a publish or subscribe the server refused) is
//   reported by the server asynchronously and never ends the connection: it
//   is logged, counted and reported as 'permission-violation'.

import {
  connect,
  DebugEvents,
  ErrorCode,
  Events,
  RequestStrategy,
  type ConnectionOptions,
  type Msg,
  type NatsConnection,
  type NatsError,
} from 'nats';
import type { Logger } from './log';
import type { NatsAuth } from './nats-options';
import { inboxPrefix } from './permissions';

export interface BusMessage {
  subject: string;
  data: Uint8Array;
  reply?: string;
  /** Replies to a request; false when the message carried no reply subject. */
  respond(data: Uint8Array | object): boolean;
}

export interface Subscription {
  unsubscribe(): void;
  readonly subject: string;
}

export type BusEvent = 'disconnect' | 'reconnect' | 'reconnecting' | 'error' | 'slow-consumer' | 'permission-violation' | 'closed';

export interface SubscribeOptions {
  queue?: string;
  /** Limit on handler calls whose returned promise has not settled yet. Default 65536. */
  maxPendingMessages?: number;
  /** Limit on the bytes of those messages. Default 64 MiB. */
  maxPendingBytes?: number;
}

export interface Bus {
  /** Objects are JSON-encoded. Throws once the bus is closed. */
  publish(subject: string, data: Uint8Array | object): void;
  subscribe(subject: string, handler: (msg: BusMessage) => void, opts?: SubscribeOptions): Subscription;
  /** Resolves with the JSON-decoded first reply; rejects with a BusRequestError. */
  request<T = unknown>(subject: string, data: Uint8Array | object, timeoutMs: number): Promise<T>;
  onEvent(listener: (event: BusEvent, detail?: string) => void): void;
  isConnected(): boolean;
  /** Publishes and subscriptions the server refused since connecting. */
  readonly permissionViolations: number;
  flush(): Promise<void>;
  /** Drains subscriptions and pending publishes, then closes. Idempotent. */
  close(): Promise<void>;
  /** Escape hatch for JetStream users (config store, controller). */
  readonly nats: NatsConnection;
}

export interface ConnectBusOptions {
  /** One URL, a list, or a comma-separated list (as NATS_URL often is). */
  servers: string | string[];
  /** Connection name, shown by the server's monitoring. */
  name: string;
  logger: Logger;
  /** Keep trying until a server answers instead of failing at once (roles started before nats-server). */
  waitForServer?: boolean;
  /** Credentials from a file or the environment (bus/nats-options.ts); they take precedence over any in the URL. */
  auth?: NatsAuth;
}

export type BusRequestFailure = 'timeout' | 'no-responders' | 'bad-reply' | 'closed' | 'other';

export class BusRequestError extends Error {
  constructor(
    message: string,
    readonly reason: BusRequestFailure,
    readonly subject: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BusRequestError';
  }
}

const DEFAULT_MAX_PENDING_MESSAGES = 65536;
const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeBody(data: Uint8Array | object): Uint8Array {
  return data instanceof Uint8Array ? data : encoder.encode(JSON.stringify(data));
}

/** Hides user, password or token in one URL or a comma-separated list of URLs. */
export function redactUrl(url: string): string {
  return url.split(',').map(redactOne).join(',');
}

function redactOne(url: string): string {
  const scheme = /^\s*[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0] ?? '';
  const rest = url.slice(scheme.length);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd === -1 ? rest : rest.slice(0, authorityEnd);
  // The last '@' of the authority, in case a password holds an unescaped '@'.
  const at = authority.lastIndexOf('@');
  return at === -1 ? url : `${scheme}***${rest.slice(at)}`;
}

export interface ParsedServers {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
}

/**
 * Splits server URLs into credential-free addresses and the credentials, which
 * nats.js only accepts as options. `nats://user:pass@host` gives user/pass,
 * `nats://secret@host` a token, as with the Go client.
 */
export function parseServers(servers: string | string[]): ParsedServers {
  const list = (Array.isArray(servers) ? servers : [servers])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (list.length === 0) throw new Error('no NATS server URL given');
  const parsed: ParsedServers = { servers: [] };
  for (const server of list) {
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(server) ? server : `nats://${server}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw new Error(`invalid NATS server URL: ${redactUrl(server)}`);
    }
    if (url.username !== '' && parsed.user === undefined && parsed.token === undefined) {
      const username = decodeURIComponent(url.username);
      if (url.password !== '') {
        parsed.user = username;
        parsed.pass = decodeURIComponent(url.password);
      } else {
        parsed.token = username;
      }
    }
    parsed.servers.push(`${url.protocol}//${url.host}`);
  }
  return parsed;
}

export async function connectBus(opts: ConnectBusOptions): Promise<Bus> {
  const { logger } = opts;
  const parsed = parseServers(opts.servers);
  const where = parsed.servers.join(',');
  const auth = opts.auth ?? { ...parsed, origin: 'the URL' };
  const options: ConnectionOptions = {
    servers: parsed.servers,
    name: opts.name,
    user: auth.user,
    pass: auth.pass,
    token: auth.token,
    inboxPrefix: auth.user !== undefined && INBOX_TOKEN.test(auth.user) ? inboxPrefix(auth.user) : undefined,
    // In the order given: `skiff up` lists the node's own nats-server first, so
    // that a node's roles do not hang on another node's server (nats.js picks
    // one at random otherwise), which took them down with that node's link.
    noRandomize: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    reconnectJitter: 250,
    waitOnFirstConnect: opts.waitForServer === true,
    // Notice a silently dead server (its host gone, its link down: no reset
    // comes) within 10-15 s rather than nats.js's default 4 min, and move on
    // to another server of the cluster: the router pauses pruning only once it
    // knows NATS is gone, and a controller left on a server cut off from the
    // others answered nothing for ~40 s at the former 10 s x 3.
    pingInterval: 5_000,
    maxPingOut: 2,
  };
  if (opts.waitForServer) logger.info('connecting to NATS, waiting for a server', { servers: where });
  let nc: NatsConnection;
  try {
    nc = await connect(options);
  } catch (err) {
    if (isNatsCode(err, ErrorCode.AuthorizationViolation)) {
      const who = auth.user !== undefined ? `user ${auth.user}` : auth.token !== undefined ? 'the token' : 'an anonymous connection';
      const from = auth.user !== undefined || auth.token !== undefined ? ` from ${auth.origin}` : '';
      throw new Error(`NATS at ${where} refused ${who}${from} (authorization violation)`, { cause: err });
    }
    throw new Error(`cannot connect to NATS at ${where}: ${describeNatsError(err)}`, { cause: err });
  }
  logger.info('connected to NATS', { servers: where, server: nc.getServer(), user: auth.user });
  return new NatsBus(nc, logger);
}

/** A NATS user name that can be one subject token (the inbox prefix's second). */
const INBOX_TOKEN = /^[A-Za-z0-9_-]+$/;

function isNatsCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && (err as NatsError).code === code;
}

function describeNatsError(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err) {
    const code = (err as NatsError).code;
    if (code === ErrorCode.ConnectionRefused) return 'connection refused';
    if (code === ErrorCode.AuthorizationViolation) return 'authorization violation';
  }
  return err instanceof Error ? err.message : String(err);
}

class NatsBus implements Bus {
  private readonly listeners: Array<(event: BusEvent, detail?: string) => void> = [];
  private connected = true;
  private closing: Promise<void> | undefined;
  private disconnectedAt = 0;
  permissionViolations = 0;

  constructor(
    readonly nats: NatsConnection,
    private readonly logger: Logger,
  ) {
    void this.watchStatus();
    void nats.closed().then((err) => {
      this.connected = false;
      if (err) this.logger.error('NATS connection closed', { error: describeNatsError(err) });
      else this.logger.info('NATS connection closed');
      this.emit('closed', err ? describeNatsError(err) : undefined);
    });
  }

  publish(subject: string, data: Uint8Array | object): void {
    this.nats.publish(subject, encodeBody(data));
  }

  subscribe(subject: string, handler: (msg: BusMessage) => void, opts: SubscribeOptions = {}): Subscription {
    const limits = {
      messages: opts.maxPendingMessages ?? DEFAULT_MAX_PENDING_MESSAGES,
      bytes: opts.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES,
    };
    const backlog = { messages: 0, bytes: 0, dropped: 0, slow: false };
    const logger = this.logger;

    const settle = (size: number) => {
      backlog.messages--;
      backlog.bytes -= size;
      if (backlog.slow && backlog.messages < limits.messages && backlog.bytes < limits.bytes) {
        backlog.slow = false;
        logger.warn('subscription caught up', { subject, dropped: backlog.dropped });
        backlog.dropped = 0;
      }
    };

    const deliver = (msg: Msg) => {
      if (backlog.messages >= limits.messages || backlog.bytes + msg.data.length > limits.bytes) {
        backlog.dropped++;
        if (!backlog.slow) {
          backlog.slow = true;
          const detail = `${subject}: ${backlog.messages} messages, ${backlog.bytes} bytes pending`;
          logger.warn('slow consumer, dropping messages', { subject, pending: backlog.messages, pending_bytes: backlog.bytes });
          this.emit('slow-consumer', detail);
        }
        return;
      }
      let result: unknown;
      try {
        result = handler(toBusMessage(msg));
      } catch (err) {
        logger.error('message handler failed', { subject: msg.subject, error: err });
        return;
      }
      if (isThenable(result)) {
        const size = msg.data.length;
        backlog.messages++;
        backlog.bytes += size;
        result.then(
          () => settle(size),
          (err: unknown) => {
            settle(size);
            logger.error('message handler failed', { subject: msg.subject, error: err });
          },
        );
      }
    };

    const sub = this.nats.subscribe(subject, {
      queue: opts.queue,
      callback: (err, msg) => {
        if (err) {
          // A refused subscription is counted and logged with the status events.
          if (!isNatsCode(err, ErrorCode.PermissionsViolation)) logger.error('subscription error', { subject, error: describeNatsError(err) });
          return;
        }
        deliver(msg);
      },
    });
    return {
      subject,
      unsubscribe: () => {
        if (!sub.isClosed()) sub.unsubscribe();
      },
    };
  }

  async request<T = unknown>(subject: string, data: Uint8Array | object, timeoutMs: number): Promise<T> {
    let reply: Msg;
    try {
      reply = await this.nats.request(subject, encodeBody(data), { timeout: timeoutMs });
    } catch (err) {
      throw requestError(subject, timeoutMs, err);
    }
    try {
      return JSON.parse(decoder.decode(reply.data)) as T;
    } catch (err) {
      throw new BusRequestError(`reply to ${subject} is not JSON`, 'bad-reply', subject, { cause: err });
    }
  }

  onEvent(listener: (event: BusEvent, detail?: string) => void): void {
    this.listeners.push(listener);
  }

  isConnected(): boolean {
    return this.connected && !this.nats.isClosed();
  }

  flush(): Promise<void> {
    return this.nats.flush();
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    if (this.nats.isClosed()) return;
    if (this.connected) {
      // Drain lets in-flight handlers and buffered publishes finish, but it needs a
      // server; bound it so a server that vanishes mid-drain cannot hang shutdown.
      const drained = this.nats.drain().then(() => true, () => false);
      const timedOut = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000).unref());
      if (await Promise.race([drained, timedOut])) return;
    }
    await this.nats.close();
  }

  private emit(event: BusEvent, detail?: string): void {
    for (const listener of this.listeners) {
      try {
        listener(event, detail);
      } catch (err) {
        this.logger.error('bus event listener failed', { event, error: err });
      }
    }
  }

  private async watchStatus(): Promise<void> {
    for await (const status of this.nats.status()) {
      const detail = typeof status.data === 'string' || typeof status.data === 'number' ? String(status.data) : undefined;
      switch (status.type) {
        case Events.Disconnect:
          this.connected = false;
          this.disconnectedAt = Date.now();
          this.logger.warn('disconnected from NATS', { server: detail });
          this.emit('disconnect', detail);
          break;
        case Events.Reconnect:
          this.connected = true;
          this.logger.info('reconnected to NATS', { server: detail, down_ms: Date.now() - this.disconnectedAt });
          this.emit('reconnect', detail);
          break;
        case DebugEvents.Reconnecting:
          // Every attempt, every ~0.5 s while NATS is down: debug only.
          this.logger.debug('reconnecting to NATS', { server: detail });
          this.emit('reconnecting', detail);
          break;
        case Events.Error:
          if (status.data === ErrorCode.PermissionsViolation) {
            this.permissionViolations++;
            const context = status.permissionContext;
            this.logger.warn('NATS refused: permission violation', { operation: context?.operation, subject: context?.subject, total: this.permissionViolations });
            this.emit('permission-violation', context ? `${context.operation} ${context.subject}` : undefined);
            break;
          }
          this.logger.error('NATS error', { error: detail });
          this.emit('error', detail);
          break;
        case Events.LDM:
          this.logger.warn('NATS server entering lame duck mode', { server: detail });
          break;
        case DebugEvents.StaleConnection:
          this.logger.warn('NATS connection stale, reconnecting');
          break;
        default:
          break;
      }
    }
  }
}

function toBusMessage(msg: Msg): BusMessage {
  return {
    subject: msg.subject,
    data: msg.data,
    reply: msg.reply || undefined,
    respond: (data) => msg.respond(encodeBody(data)),
  };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

function requestError(subject: string, timeoutMs: number, err: unknown): BusRequestError {
  const code = err && typeof err === 'object' && 'code' in err ? (err as NatsError).code : undefined;
  switch (code) {
    case ErrorCode.Timeout:
      return new BusRequestError(`request to ${subject} timed out after ${timeoutMs} ms`, 'timeout', subject, { cause: err });
    case ErrorCode.NoResponders:
      return new BusRequestError(`no responders for ${subject}`, 'no-responders', subject, { cause: err });
    case ErrorCode.ConnectionClosed:
      return new BusRequestError(`request to ${subject}: bus is closed`, 'closed', subject, { cause: err });
    default:
      return new BusRequestError(`request to ${subject} failed: ${describeNatsError(err)}`, 'other', subject, { cause: err });
  }
}

/**
 * Scatter-gather: publishes a request and collects every reply that arrives
 * within windowMs (or until `max` replies), JSON-decoded. For `dea.find.droplet`,
 * `dea.discover`, `healthmanager.health` and other one-to-many requests.
 * Undecodable replies are logged and skipped; no responders gives [].
 */
export async function requestAll<T = unknown>(
  bus: Bus,
  subject: string,
  data: Uint8Array | object,
  opts: { windowMs: number; max?: number; logger?: Logger },
): Promise<T[]> {
  const replies: T[] = [];
  try {
    const iterator = await bus.nats.requestMany(subject, encodeBody(data), {
      strategy: opts.max === undefined ? RequestStrategy.Timer : RequestStrategy.Count,
      maxWait: opts.windowMs,
      maxMessages: opts.max,
    });
    for await (const reply of iterator) {
      try {
        replies.push(JSON.parse(decoder.decode(reply.data)) as T);
      } catch {
        opts.logger?.warn('reply is not JSON, skipped', { subject });
      }
    }
  } catch (err) {
    const code = err && typeof err === 'object' && 'code' in err ? (err as NatsError).code : undefined;
    if (code === ErrorCode.NoResponders) return replies;
    throw requestError(subject, opts.windowMs, err);
  }
  return replies;
}
