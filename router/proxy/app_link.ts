// The app side of a proxied WebSocket: RFC 6455 client framing over the
// socket the router upgraded itself (websocket.ts). It replaces the `ws`
// package there: `ws` wrote every message with two writes under cork, and
// read through a Writable stream per socket; here a message is one masked
// frame in one write, frames are parsed straight off the socket's chunks,
// and an idle link is a handful of fields.
//
// What it does not do, because the relay never needs it: extensions
// (permessage-deflate is never negotiated), sending fragmented messages,
// sending pings, answering pings (the relay forwards the app's pings to the
// client, whose pongs come back through pong()).

import { isUtf8 } from 'node:buffer';
import type * as net from 'node:net';

export const LINK_OPEN = 1;
export const LINK_CLOSING = 2;
export const LINK_CLOSED = 3;

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** After sending a close frame, how long the app gets to answer before the socket is cut. */
const CLOSE_TIMEOUT_MS = 5000;

export interface AppLinkEvents {
  /** A whole message (fragments joined). `data` may be a view of a read chunk: use it before returning. */
  onMessage(link: AppLink, data: Buffer, isBinary: boolean): void;
  onPing(link: AppLink, data: Buffer): void;
  /** Once per link: the app's close code and reason, 1005 for a close without a code, 1006 for a lost connection. */
  onClose(link: AppLink, code: number, reason: Buffer): void;
  /** A protocol error of the app (a close with 1002/1007/1009 went out); onClose follows. */
  onError(link: AppLink, error: Error): void;
}

const EMPTY = Buffer.alloc(0);

/** Close codes an endpoint may send (RFC 6455 7.4). */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

export class AppLink {
  readyState = LINK_OPEN;
  /** Whoever the link serves (websocket.ts: its tunnel); cleared to detach. */
  owner: unknown = undefined;
  private chunks: Buffer[] = [];
  private chunksLength = 0;
  /** Bytes the frame at the head of `chunks` needs, once its header was read; 0: not known yet. */
  private need = 0;
  private fragments: Buffer[] | null = null;
  private fragmentsLength = 0;
  private fragmentsBinary = false;
  private closeSent = false;
  private closeEmitted = false;
  private receivedCode = 0;
  private receivedReason = EMPTY;
  private closeTimer: NodeJS.Timeout | null = null;
  /** The read being parsed is a view of a shared buffer. */
  private viewing = false;

  /**
   * `socket` is paused; start() reads `head` (bytes that came with the 101)
   * and resumes it. With `viewReads`, the socket's owner reads it through
   * net's `onread` into a shared buffer and passes each read to onRead();
   * otherwise the link listens to 'data'.
   */
  constructor(
    readonly socket: net.Socket,
    private head: Buffer,
    private readonly events: AppLinkEvents,
    private readonly maxPayload: number,
    private readonly mask: (into: Buffer, at: number) => void,
    viewReads = false,
  ) {
    (socket as net.Socket & { [kLink]?: AppLink })[kLink] = this;
    if (!viewReads) socket.on('data', linkOnData);
    socket.on('close', linkOnClose);
    socket.on('error', linkOnError);
    socket.on('end', linkOnEnd);
  }

  start(): void {
    const head = this.head;
    this.head = EMPTY;
    if (head.length > 0) this.onData(head);
    this.socket.resume();
  }

  /** One read, as a view of a buffer the next read overwrites: whatever is kept is copied. */
  onRead(view: Buffer): void {
    this.onData(view, true);
  }

  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  send(data: Uint8Array, isBinary: boolean): void {
    if (this.readyState !== LINK_OPEN) return;
    this.socket.write(this.frame(isBinary ? OP_BINARY : OP_TEXT, data));
  }

  pong(data: Uint8Array): void {
    if (this.readyState !== LINK_OPEN) return;
    this.socket.write(this.frame(OP_PONG, data.length > 125 ? data.subarray(0, 125) : data));
  }

  /** Starts the closing handshake (no code: a close frame without one). */
  close(code?: number, reason: Buffer | string = EMPTY): void {
    if (this.readyState !== LINK_OPEN) return;
    this.sendClose(code, reason);
  }

  /** Cuts the connection without a closing handshake. */
  terminate(): void {
    if (this.readyState === LINK_CLOSED) return;
    this.readyState = LINK_CLOSED;
    this.socket.destroy();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  // ---- frames out ----

  private frame(opcode: number, payload: Uint8Array): Buffer {
    const length = payload.length;
    const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
    const out = Buffer.allocUnsafe(header + 4 + length);
    out[0] = 0x80 | opcode;
    if (header === 2) {
      out[1] = 0x80 | length;
    } else if (header === 4) {
      out[1] = 0x80 | 126;
      out.writeUInt16BE(length, 2);
    } else {
      out[1] = 0x80 | 127;
      out.writeUInt32BE(Math.floor(length / 0x100000000), 2);
      out.writeUInt32BE(length >>> 0, 6);
    }
    this.mask(out, header);
    const m0 = out[header]!;
    const m1 = out[header + 1]!;
    const m2 = out[header + 2]!;
    const m3 = out[header + 3]!;
    const at = header + 4;
    const whole = length & ~3;
    let i = 0;
    for (; i < whole; i += 4) {
      out[at + i] = payload[i]! ^ m0;
      out[at + i + 1] = payload[i + 1]! ^ m1;
      out[at + i + 2] = payload[i + 2]! ^ m2;
      out[at + i + 3] = payload[i + 3]! ^ m3;
    }
    for (; i < length; i++) out[at + i] = payload[i]! ^ out[header + (i & 3)]!;
    return out;
  }

  private sendClose(code: number | undefined, reason: Buffer | string): void {
    this.readyState = LINK_CLOSING;
    if (this.closeSent) return;
    this.closeSent = true;
    let payload = EMPTY;
    if (code !== undefined && isSendableCloseCode(code)) {
      let text = typeof reason === 'string' ? Buffer.from(reason) : reason;
      if (text.length > 123) text = text.subarray(0, 123);
      payload = Buffer.allocUnsafe(2 + text.length);
      payload.writeUInt16BE(code, 0);
      text.copy(payload, 2);
    }
    if (!this.socket.destroyed) this.socket.write(this.frame(OP_CLOSE, payload));
    this.closeTimer = setTimeout(linkCloseTimeout, CLOSE_TIMEOUT_MS, this);
    this.closeTimer.unref();
  }

  // ---- frames in ----

  onData(chunk: Buffer, isView = false): void {
    if (this.readyState === LINK_CLOSED) return;
    if (this.need !== 0 && this.chunksLength + chunk.length < this.need) {
      // A large frame still arriving: kept, not joined yet.
      this.chunks.push(isView ? Buffer.from(chunk) : chunk);
      this.chunksLength += chunk.length;
      return;
    }
    let buf: Buffer;
    if (this.chunks.length === 0) {
      buf = chunk;
    } else {
      this.chunks.push(chunk);
      buf = Buffer.concat(this.chunks, this.chunksLength + chunk.length);
      isView = false; // a copy now
    }
    this.viewing = isView;
    this.chunks.length = 0;
    this.chunksLength = 0;
    this.need = 0;
    let off = 0;
    while (this.readyState !== LINK_CLOSED) {
      const avail = buf.length - off;
      if (avail < 2) break;
      const b0 = buf[off]!;
      const b1 = buf[off + 1]!;
      let length = b1 & 0x7f;
      let header = 2;
      if (length === 126) {
        if (avail < 4) break;
        length = buf.readUInt16BE(off + 2);
        header = 4;
      } else if (length === 127) {
        if (avail < 10) break;
        const high = buf.readUInt32BE(off + 2);
        if (high > 0x1fffff) return this.fail(1009, 'frame length over 2^53');
        length = high * 0x100000000 + buf.readUInt32BE(off + 6);
        header = 10;
      }
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if ((b0 & 0x70) !== 0) return this.fail(1002, 'RSV bits set without an extension');
      if ((b1 & 0x80) !== 0) return this.fail(1002, 'a masked frame from the server');
      if (opcode >= 8) {
        if (!fin || length > 125) return this.fail(1002, 'a fragmented or oversized control frame');
      } else if (length + this.fragmentsLength > this.maxPayload) {
        return this.fail(1009, 'message over the payload limit');
      }
      if (avail < header + length) {
        this.need = header + length;
        break;
      }
      const payload = buf.subarray(off + header, off + header + length);
      off += header + length;
      this.frameIn(opcode, fin, payload);
    }
    if (off < buf.length && this.readyState !== LINK_CLOSED) {
      buf = off === 0 ? buf : buf.subarray(off);
      this.chunks.push(isView ? Buffer.from(buf) : buf);
      this.chunksLength = buf.length;
    }
    this.viewing = false;
  }

  /** A payload to keep past this read: copied when it is a view of the shared read buffer. */
  private kept(payload: Buffer): Buffer {
    return this.viewing ? Buffer.from(payload) : payload;
  }

  private frameIn(opcode: number, fin: boolean, payload: Buffer): void {
    switch (opcode) {
      case OP_TEXT:
      case OP_BINARY:
        if (this.fragments !== null) return this.fail(1002, 'a new message inside a fragmented one');
        if (fin) return this.deliver(payload, opcode === OP_BINARY);
        this.fragments = [this.kept(payload)];
        this.fragmentsLength = payload.length;
        this.fragmentsBinary = opcode === OP_BINARY;
        return;
      case OP_CONTINUATION: {
        const fragments = this.fragments;
        if (fragments === null) return this.fail(1002, 'a continuation frame without a message');
        fragments.push(this.kept(payload));
        this.fragmentsLength += payload.length;
        if (!fin) return;
        const whole = Buffer.concat(fragments, this.fragmentsLength);
        this.fragments = null;
        this.fragmentsLength = 0;
        return this.deliver(whole, this.fragmentsBinary);
      }
      case OP_CLOSE:
        return this.closeIn(payload);
      case OP_PING:
        if (this.readyState === LINK_OPEN) this.events.onPing(this, payload);
        return;
      case OP_PONG:
        return;
      default:
        return this.fail(1002, `unknown opcode ${opcode}`);
    }
  }

  private deliver(data: Buffer, isBinary: boolean): void {
    if (this.readyState !== LINK_OPEN) return;
    if (!isBinary && !isUtf8(data)) return this.fail(1007, 'a text message that is not UTF-8');
    this.events.onMessage(this, data, isBinary);
  }

  private closeIn(payload: Buffer): void {
    let code = 1005;
    let reason = EMPTY;
    if (payload.length === 1) return this.fail(1002, 'a close frame of one byte');
    if (payload.length >= 2) {
      code = payload.readUInt16BE(0);
      if (!isSendableCloseCode(code)) return this.fail(1002, `invalid close code ${code}`);
      reason = Buffer.from(payload.subarray(2));
      if (!isUtf8(reason)) return this.fail(1007, 'a close reason that is not UTF-8');
    }
    this.receivedCode = code;
    this.receivedReason = reason;
    // Echo the code (RFC 6455 5.5.1), then end our side.
    this.sendClose(code === 1005 ? undefined : code, EMPTY);
    this.socket.end();
    this.emitClose(code, reason);
  }

  private fail(code: number, message: string): void {
    if (this.readyState === LINK_OPEN) {
      this.sendClose(code, EMPTY);
      this.events.onError(this, new Error(`app WebSocket protocol error: ${message}`));
    }
    this.chunks.length = 0;
    this.chunksLength = 0;
    this.need = 0;
    this.socket.pause();
  }

  emitClose(code: number, reason: Buffer): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.events.onClose(this, code, reason);
  }

  socketClosed(): void {
    this.readyState = LINK_CLOSED;
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.emitClose(this.receivedCode === 0 ? 1006 : this.receivedCode, this.receivedReason);
  }
}

const kLink = Symbol('appLink');
type LinkedSocket = net.Socket & { [kLink]?: AppLink };

// Shared listeners (`this` is the socket): no closures per link.
function linkOnData(this: LinkedSocket, chunk: Buffer): void {
  this[kLink]?.onData(chunk);
}
function linkOnClose(this: LinkedSocket): void {
  this[kLink]?.socketClosed();
}
function linkOnEnd(this: LinkedSocket): void {
  // The app ended its side: finish ours (a close frame, if any, was handled).
  if (!this.destroyed) this.end();
}
function linkOnError(this: LinkedSocket): void {
  // 'close' follows and reports the lost connection (1006).
}
function linkCloseTimeout(link: AppLink): void {
  link.terminate();
}
