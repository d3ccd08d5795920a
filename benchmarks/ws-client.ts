// A minimal WebSocket client on node:net, for load generation only (the
// sanity checks use the `ws` package). Why not `ws` for the load: measured
// here (2 cores) against the uWS echo backend with 100 connections, `ws`
// reached ~60k round trips/s on one thread at 70-90% of a core, this client
// ~130k (one core for it, one for the backend). It keeps per-message work to
// one prebuilt frame written per round trip and a small parser over one
// shared read buffer (`onread`, no stream machinery).
//
// Client frames are masked as RFC 6455 requires, with one random key per
// prebuilt frame (reused for every send: servers do not check, and the key's
// unpredictability only matters against browser-side attacks).

import * as crypto from 'node:crypto';
import * as net from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Largest server frame accepted (the echo is 64 B; this is only a guard). */
const MAX_FRAME = 64 * 1024 * 1024;
const MAX_HEAD = 16 * 1024;

export const OP_CONT = 0;
export const OP_TEXT = 1;
export const OP_BINARY = 2;
export const OP_CLOSE = 8;
export const OP_PING = 9;
export const OP_PONG = 10;

const ZERO_MASK = Buffer.alloc(4);

/** A complete, masked client frame (FIN set). Build once, write many times. */
export function clientFrame(opcode: number, payload: Buffer, maskKey: Buffer = crypto.randomBytes(4)): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const out = Buffer.allocUnsafe(2 + ext + 4 + len);
  out[0] = 0x80 | opcode;
  if (ext === 0) {
    out[1] = 0x80 | len;
  } else if (ext === 2) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  const mo = 2 + ext;
  maskKey.copy(out, mo, 0, 4);
  for (let i = 0; i < len; i++) out[mo + 4 + i] = (payload[i] as number) ^ (maskKey[i & 3] as number);
  return out;
}

function closeFrame(code: number): Buffer {
  const p = Buffer.allocUnsafe(2);
  p.writeUInt16BE(code, 0);
  return clientFrame(OP_CLOSE, p, ZERO_MASK);
}
const CLOSE_1000 = closeFrame(1000);

export class HandshakeError extends Error {
  constructor(
    message: string,
    /** HTTP status when the server answered with something other than 101. */
    readonly status?: number,
    /** errno code (ECONNREFUSED, EADDRNOTAVAIL, ...) when the connection failed. */
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface RawWsHandlers {
  /** A complete data message; `data` is only valid during the call (shared read buffer). */
  onMessage(conn: RawWs, data: Buffer, binary: boolean): void;
  /** The connection is gone (after it opened). `expected`: we asked for the close. */
  onClose(conn: RawWs, reason: string, expected: boolean): void;
}

export interface RawWsOptions {
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Bind this source address (127.0.0.2, ...) before connecting. */
  localAddress?: string;
  path: string;
  hostHeader: string;
  handshakeTimeoutMs?: number;
  /** Read buffer shared by all connections of one thread; bytes kept past a callback are copied. */
  readBuffer: Buffer;
  handlers: RawWsHandlers;
}

type State = 'connecting' | 'open' | 'closing' | 'closed';

export class RawWs {
  state: State = 'connecting';
  /** For the user: when the message in flight was sent (performance.now()). */
  sentAt = 0;
  /** For the user: a message is awaiting its echo. */
  inFlight = false;
  /** For the user: excluded from further use (e.g. its echo never came). */
  stalled = false;
  readonly socket: net.Socket;
  private head = '';
  private leftover: Buffer | null = null;
  private fragments: Buffer[] | null = null;
  private fragmentsBinary = false;
  private lastError = '';
  private readonly key = crypto.randomBytes(16).toString('base64');
  private readonly handlers: RawWsHandlers;
  private settle: ((err?: HandshakeError) => void) | null = null;

  private constructor(o: RawWsOptions, settle: (err?: HandshakeError) => void) {
    this.handlers = o.handlers;
    this.settle = settle;
    this.socket = net.connect({
      host: o.host ?? '127.0.0.1',
      port: o.port,
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
      noDelay: true,
      onread: {
        buffer: o.readBuffer,
        callback: (n: number, buf: Uint8Array): boolean => {
          this.onRead(n, buf as Buffer);
          return true;
        },
      },
    });
    const timeout = setTimeout(() => this.fail(new HandshakeError(`handshake timed out after ${o.handshakeTimeoutMs ?? 10000} ms`, undefined, 'ETIMEDOUT')), o.handshakeTimeoutMs ?? 10000);
    timeout.unref();
    this.socket.once('connect', () => {
      this.socket.write(
        `GET ${o.path} HTTP/1.1\r\nHost: ${o.hostHeader}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.lastError = err.code ?? err.message;
      if (this.state === 'connecting') this.fail(new HandshakeError(`connect: ${err.message}`, undefined, err.code));
    });
    this.socket.on('close', () => {
      clearTimeout(timeout);
      if (this.state === 'connecting') {
        this.fail(new HandshakeError(`connection closed during the handshake${this.head ? ` (got: ${firstLine(this.head)})` : ''}`));
        return;
      }
      if (this.state === 'closed') return;
      const expected = this.state === 'closing';
      this.state = 'closed';
      this.handlers.onClose(this, expected ? 'closed' : this.lastError || 'connection closed', expected);
    });
    // Settled either way: stop the handshake timer.
    const done = this.settle;
    this.settle = (err?: HandshakeError): void => {
      clearTimeout(timeout);
      done(err);
    };
  }

  /** Connects and completes the upgrade; rejects with a HandshakeError. */
  static open(o: RawWsOptions): Promise<RawWs> {
    return new Promise<RawWs>((resolve, reject) => {
      const conn: RawWs = new RawWs(o, (err) => (err ? reject(err) : resolve(conn)));
    });
  }

  /** Writes a prebuilt frame. */
  send(frame: Buffer): void {
    if (this.state === 'open') this.socket.write(frame);
  }

  /** Close handshake (1000), then FIN; destroyed after graceMs if the server does not finish it. */
  close(graceMs = 2000): void {
    if (this.state === 'open') {
      this.state = 'closing';
      this.socket.write(CLOSE_1000);
      this.socket.end();
      setTimeout(() => this.socket.destroy(), graceMs).unref();
    } else if (this.state === 'connecting') {
      this.socket.destroy();
    }
  }

  destroy(): void {
    if (this.state === 'open') this.state = 'closing';
    this.socket.destroy();
  }

  private fail(err: HandshakeError): void {
    if (this.state !== 'connecting') return;
    this.state = 'closed';
    this.socket.destroy();
    const s = this.settle;
    this.settle = null;
    if (s) s(err);
  }

  private onRead(nread: number, buf: Buffer): void {
    if (this.state === 'closed') return;
    let start = 0;
    if (this.state === 'connecting') {
      // The head is small and arrives once: latin1 keeps byte offsets exact.
      const prev = this.head.length;
      this.head += buf.toString('latin1', 0, nread);
      const end = this.head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.head.length > MAX_HEAD) this.fail(new HandshakeError(`response head over ${MAX_HEAD} bytes`));
        return;
      }
      const head = this.head.slice(0, end);
      start = end + 4 - prev;
      this.head = '';
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? NaN);
      if (status !== 101) {
        const body = buf.toString('latin1', start, Math.min(nread, start + 120)).replace(/\s+/g, ' ').trim();
        this.fail(new HandshakeError(`upgrade answered ${firstLine(head).replace(/^HTTP\/1\.[01] /, '')}${body ? ` (${body})` : ''}`, Number.isFinite(status) ? status : undefined));
        return;
      }
      const accept = /\r\nsec-websocket-accept:[ \t]*([^\r\n]*?)[ \t]*(?:\r\n|$)/i.exec(head)?.[1];
      const want = crypto.createHash('sha1').update(this.key + GUID).digest('base64');
      if (accept !== want) {
        this.fail(new HandshakeError(`101 with ${accept === undefined ? 'no' : 'a wrong'} Sec-WebSocket-Accept`, 101));
        return;
      }
      this.state = 'open';
      const s = this.settle;
      this.settle = null;
      if (s) s();
      if (start >= nread) return;
    }
    this.parse(buf, start, nread);
  }

  private parse(buf: Buffer, start: number, end: number): void {
    let data = buf;
    let off = start;
    let lim = end;
    if (this.leftover) {
      data = Buffer.concat([this.leftover, buf.subarray(start, end)]);
      off = 0;
      lim = data.length;
      this.leftover = null;
    }
    while (lim - off >= 2) {
      const b0 = data[off] as number;
      const b1 = data[off + 1] as number;
      let len = b1 & 0x7f;
      let h = 2;
      if (len === 126) {
        if (lim - off < 4) break;
        len = data.readUInt16BE(off + 2);
        h = 4;
      } else if (len === 127) {
        if (lim - off < 10) break;
        const big = data.readBigUInt64BE(off + 2);
        if (big > BigInt(MAX_FRAME)) {
          this.protocolError(`server frame of ${big} bytes`);
          return;
        }
        len = Number(big);
        h = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      if (masked) h += 4;
      if (lim - off < h + len) break;
      let payload = data.subarray(off + h, off + h + len);
      if (masked) {
        // Servers must not mask; tolerate it anyway.
        const key = data.subarray(off + h - 4, off + h);
        const copy = Buffer.allocUnsafe(len);
        for (let i = 0; i < len; i++) copy[i] = (payload[i] as number) ^ (key[i & 3] as number);
        payload = copy;
      }
      off += h + len;
      this.frame((b0 & 0x80) !== 0, b0 & 0x0f, payload);
      if (this.state === 'closed') return;
    }
    if (off < lim) this.leftover = Buffer.from(data.subarray(off, lim));
  }

  private frame(fin: boolean, op: number, payload: Buffer): void {
    switch (op) {
      case OP_TEXT:
      case OP_BINARY:
        if (this.fragments) {
          this.protocolError('new message inside a fragmented one');
          return;
        }
        if (fin) {
          this.handlers.onMessage(this, payload, op === OP_BINARY);
        } else {
          this.fragments = [Buffer.from(payload)];
          this.fragmentsBinary = op === OP_BINARY;
        }
        return;
      case OP_CONT:
        if (!this.fragments) {
          this.protocolError('continuation without a message');
          return;
        }
        this.fragments.push(Buffer.from(payload));
        if (fin) {
          const whole = Buffer.concat(this.fragments);
          this.fragments = null;
          this.handlers.onMessage(this, whole, this.fragmentsBinary);
        }
        return;
      case OP_PING:
        if (this.state === 'open') this.socket.write(clientFrame(OP_PONG, Buffer.from(payload), ZERO_MASK));
        return;
      case OP_PONG:
        return;
      case OP_CLOSE: {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        const expected = this.state === 'closing';
        if (this.state === 'open') {
          this.socket.write(code === 1005 ? clientFrame(OP_CLOSE, Buffer.alloc(0), ZERO_MASK) : closeFrame(code));
          this.socket.end();
        }
        this.state = 'closed';
        setTimeout(() => this.socket.destroy(), 2000).unref();
        const reason = payload.length > 2 ? payload.toString('utf8', 2) : '';
        this.handlers.onClose(this, expected ? 'closed' : `server closed (${code}${reason ? ` ${reason}` : ''})`, expected);
        return;
      }
      default:
        this.protocolError(`unknown opcode ${op}`);
    }
  }

  private protocolError(why: string): void {
    const expected = this.state === 'closing';
    this.state = 'closed';
    this.socket.destroy();
    this.handlers.onClose(this, `protocol error: ${why}`, expected);
  }
}

function firstLine(s: string): string {
  const i = s.indexOf('\r\n');
  return (i < 0 ? s : s.slice(0, i)).slice(0, 120);
}
