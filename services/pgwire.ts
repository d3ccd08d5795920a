// A small PostgreSQL client: the frontend/backend protocol v3, simple
// queries only, trust or SCRAM-SHA-256 authentication. The services node
// talks to its own cluster through it (as the superuser, over the cluster's
// private Unix socket), and tests check bound apps' credentials with it. No
// npm dependency: the platform's root installs none for a service.
//
// Errors carry PostgreSQL's message and SQLSTATE, never a query's text nor
// a password (queries may hold password verifiers).

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export interface PgTarget {
  /** A Unix socket path, or host and port. */
  path?: string;
  host?: string;
  port?: number;
  user: string;
  database: string;
  /** Needed for SCRAM; absent for trust. */
  password?: string;
  timeoutMs?: number;
}

export class PgError extends Error {
  override name = 'PgError';
  constructor(
    message: string,
    /** SQLSTATE, e.g. 42501 (insufficient privilege), 28P01 (bad password); '' for a connection failure. */
    readonly code: string,
  ) {
    super(message);
  }
}

export type Row = Array<string | null>;

/** One statement's result: its rows (text format) and command tag. */
export interface Result {
  rows: Row[];
  command: string;
}

/** An open connection; queries run one at a time. */
export class PgConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: ((message: Message | Error) => void) | null = null;
  private queue: Array<Message | Error> = [];
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.push(new PgError(`postgresql: ${error.message}`, '')));
    socket.on('close', () => {
      this.closed = true;
      this.push(new PgError('postgresql closed the connection', ''));
    });
  }

  static async open(target: PgTarget): Promise<PgConnection> {
    const timeoutMs = target.timeoutMs ?? 10_000;
    const socket = target.path !== undefined ? connect({ path: target.path }) : connect({ host: target.host ?? '127.0.0.1', port: target.port ?? 5432 });
    socket.setNoDelay(true);
    const connection = new PgConnection(socket);
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', (error) => reject(new PgError(`cannot connect to postgresql: ${error.message}`, '')));
      });
      await connection.startup(target);
      return connection;
    } catch (error) {
      socket.destroy();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs one or more statements (simple query protocol); the results of each, in order. */
  async query(sql: string): Promise<Result[]> {
    this.send('Q', cstring(sql));
    const results: Result[] = [];
    let rows: Row[] = [];
    let failure: PgError | undefined;
    for (;;) {
      const message = await this.next();
      switch (message.type) {
        case 'T':
          rows = [];
          break;
        case 'D':
          rows.push(parseDataRow(message.body));
          break;
        case 'C':
          results.push({ rows, command: readCString(message.body, 0)[0] });
          rows = [];
          break;
        case 'I':
          results.push({ rows: [], command: '' });
          break;
        case 'E':
          failure = errorOf(message.body);
          break;
        case 'Z':
          if (failure) throw failure;
          return results;
        default:
          // Notices, parameter changes, notifications: nothing a caller waits for.
          break;
      }
    }
  }

  /** The rows of the last statement. */
  async rows(sql: string): Promise<Row[]> {
    const results = await this.query(sql);
    return results.at(-1)?.rows ?? [];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      this.send('X', Buffer.alloc(0));
    } catch {
      // already gone
    }
    this.socket.end();
    this.socket.destroy();
  }

  private async startup(target: PgTarget): Promise<void> {
    const params = Buffer.concat([cstring('user'), cstring(target.user), cstring('database'), cstring(target.database), cstring('client_encoding'), cstring('UTF8'), Buffer.from([0])]);
    const header = Buffer.alloc(8);
    header.writeInt32BE(8 + params.length, 0);
    header.writeInt32BE(196608, 4);
    this.socket.write(Buffer.concat([header, params]));
    let scram: ScramClient | undefined;
    for (;;) {
      const message = await this.next();
      if (message.type === 'E') throw errorOf(message.body);
      if (message.type === 'Z') return;
      if (message.type !== 'R') continue;
      const kind = message.body.readInt32BE(0);
      if (kind === 0) continue;
      if (kind === 10) {
        const mechanisms = readCStrings(message.body.subarray(4));
        if (!mechanisms.includes('SCRAM-SHA-256')) throw new PgError(`postgresql asks for ${mechanisms.join(', ')}; only SCRAM-SHA-256 is spoken here`, '');
        if (target.password === undefined) throw new PgError('postgresql asks for a password and none was given', '28P01');
        scram = new ScramClient(target.password);
        const first = Buffer.from(scram.clientFirst());
        const length = Buffer.alloc(4);
        length.writeInt32BE(first.length, 0);
        this.send('p', Buffer.concat([cstring('SCRAM-SHA-256'), length, first]));
      } else if (kind === 11 && scram) {
        this.send('p', Buffer.from(scram.clientFinal(message.body.subarray(4).toString('utf8'))));
      } else if (kind === 12 && scram) {
        scram.verifyServer(message.body.subarray(4).toString('utf8'));
      } else {
        throw new PgError(`postgresql asks for an authentication method not spoken here (${kind})`, '');
      }
    }
  }

  private send(type: string, body: Buffer): void {
    if (this.closed) throw new PgError('postgresql closed the connection', '');
    const header = Buffer.alloc(5);
    header.write(type, 0, 'ascii');
    header.writeInt32BE(body.length + 4, 1);
    this.socket.write(Buffer.concat([header, body]));
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 5) {
      const length = this.buffer.readInt32BE(1);
      if (this.buffer.length < 1 + length) break;
      const message = { type: String.fromCharCode(this.buffer[0]!), body: this.buffer.subarray(5, 1 + length) };
      this.buffer = this.buffer.subarray(1 + length);
      this.push(message);
    }
  }

  private push(item: Message | Error): void {
    if (this.waiting) {
      const wake = this.waiting;
      this.waiting = null;
      wake(item);
    } else {
      this.queue.push(item);
    }
  }

  private async next(): Promise<Message> {
    const item = this.queue.shift() ?? (await new Promise<Message | Error>((resolve) => (this.waiting = resolve)));
    if (item instanceof Error) {
      // Every later read fails the same way.
      this.queue.unshift(item);
      throw item;
    }
    return item;
  }
}

interface Message {
  type: string;
  body: Buffer;
}

/** Opens, runs `work`, closes. */
export async function withPg<T>(target: PgTarget, work: (pg: PgConnection) => Promise<T>): Promise<T> {
  const pg = await PgConnection.open(target);
  try {
    return await work(pg);
  } finally {
    await pg.close();
  }
}

function cstring(text: string): Buffer {
  return Buffer.concat([Buffer.from(text, 'utf8'), Buffer.from([0])]);
}

function readCString(buffer: Buffer, offset: number): [string, number] {
  const end = buffer.indexOf(0, offset);
  const stop = end === -1 ? buffer.length : end;
  return [buffer.subarray(offset, stop).toString('utf8'), stop + 1];
}

function readCStrings(buffer: Buffer): string[] {
  const out: string[] = [];
  let offset = 0;
  while (offset < buffer.length && buffer[offset] !== 0) {
    const [text, next] = readCString(buffer, offset);
    out.push(text);
    offset = next;
  }
  return out;
}

function parseDataRow(body: Buffer): Row {
  const count = body.readInt16BE(0);
  const row: Row = [];
  let offset = 2;
  for (let i = 0; i < count; i++) {
    const length = body.readInt32BE(offset);
    offset += 4;
    if (length === -1) {
      row.push(null);
    } else {
      row.push(body.subarray(offset, offset + length).toString('utf8'));
      offset += length;
    }
  }
  return row;
}

function errorOf(body: Buffer): PgError {
  const fields: Record<string, string> = {};
  let offset = 0;
  while (offset < body.length && body[offset] !== 0) {
    const key = String.fromCharCode(body[offset]!);
    const [value, next] = readCString(body, offset + 1);
    fields[key] = value;
    offset = next;
  }
  return new PgError(`postgresql: ${fields.M ?? 'error'}`, fields.C ?? '');
}

/** A quoted identifier. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A quoted string literal (standard_conforming_strings is on). */
export function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

// ---- SCRAM-SHA-256 (RFC 5802, RFC 7677), as PostgreSQL speaks it ----

const ITERATIONS = 4096;

function hmac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/**
 * The verifier PostgreSQL stores for a password, for `CREATE ROLE ...
 * PASSWORD '<verifier>'`: the password itself never reaches the server, its
 * statement logs or its catalogs.
 */
export function scramVerifier(password: string, salt = randomBytes(16), iterations = ITERATIONS): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const storedKey = sha256(hmac(salted, 'Client Key'));
  const serverKey = hmac(salted, 'Server Key');
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

class ScramClient {
  private readonly nonce = randomBytes(18).toString('base64');
  private firstBare = '';
  private serverSignature: Buffer | undefined;

  constructor(private readonly password: string) {}

  clientFirst(): string {
    // PostgreSQL takes the user from the startup message; the SCRAM user name stays empty.
    this.firstBare = `n=,r=${this.nonce}`;
    return `n,,${this.firstBare}`;
  }

  clientFinal(serverFirst: string): string {
    const attributes = Object.fromEntries(serverFirst.split(',').map((part) => [part.slice(0, 1), part.slice(2)]));
    const nonce = attributes.r ?? '';
    const salt = Buffer.from(attributes.s ?? '', 'base64');
    const iterations = Number(attributes.i);
    if (!nonce.startsWith(this.nonce) || salt.length === 0 || !Number.isInteger(iterations) || iterations < 1) {
      throw new PgError('postgresql sent a malformed SCRAM challenge', '08P01');
    }
    const salted = pbkdf2Sync(this.password, salt, iterations, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.firstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(sha256(clientKey), authMessage);
    const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!));
    this.serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  verifyServer(serverFinal: string): void {
    const given = Buffer.from(/(?:^|,)v=([^,]*)/.exec(serverFinal)?.[1] ?? '', 'base64');
    if (this.serverSignature === undefined || given.length !== this.serverSignature.length || !timingSafeEqual(given, this.serverSignature)) {
      throw new PgError('postgresql could not prove it knows the password', '08P01');
    }
  }
}
