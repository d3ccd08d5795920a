// A small Redis client (RESP2): enough for the services node to check its
// redis-servers (AUTH, PING, INFO) and for tests to write and read data.
// The password is sent to the server and nowhere else; errors carry
// Redis's reply, which never repeats it.

import { connect, type Socket } from 'node:net';

export type RespValue = string | number | null | RespValue[] | RespError;

export class RespError extends Error {
  override name = 'RespError';
}

export class RedisConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly pending: Array<{ resolve: (value: RespValue) => void; reject: (error: Error) => void }> = [];
  private failure: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(new RespError(`redis: ${error.message}`)));
    socket.on('close', () => this.fail(new RespError('redis closed the connection')));
  }

  static async open(host: string, port: number, password?: string, timeoutMs = 5000): Promise<RedisConnection> {
    const socket = connect({ host, port });
    socket.setNoDelay(true);
    const connection = new RedisConnection(socket);
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', (error) => reject(new RespError(`cannot connect to redis at ${host}:${port}: ${error.message}`)));
      });
      if (password !== undefined) await connection.command('AUTH', password);
      return connection;
    } catch (error) {
      socket.destroy();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends one command; resolves with its reply, rejects with a RespError for an error reply. */
  command(...args: Array<string | number>): Promise<RespValue> {
    if (this.failure) return Promise.reject(this.failure);
    const parts = args.map((arg) => Buffer.from(String(arg), 'utf8'));
    const frame = Buffer.concat([Buffer.from(`*${parts.length}\r\n`), ...parts.flatMap((part) => [Buffer.from(`$${part.length}\r\n`), part, Buffer.from('\r\n')])]);
    return new Promise((resolve, reject) => {
      this.pending.push({
        resolve: (value) => (value instanceof RespError ? reject(value) : resolve(value)),
        reject,
      });
      this.socket.write(frame);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.pending.splice(0)) waiter.reject(this.failure);
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const parsed = parse(this.buffer, 0);
      if (parsed === undefined) return;
      this.buffer = this.buffer.subarray(parsed[1]);
      this.pending.shift()?.resolve(parsed[0]);
    }
  }
}

/** One reply from `offset`: the value and where the next begins, or undefined when incomplete. */
function parse(buffer: Buffer, offset: number): [RespValue, number] | undefined {
  const end = buffer.indexOf('\r\n', offset);
  if (end === -1) return undefined;
  const type = String.fromCharCode(buffer[offset]!);
  const line = buffer.subarray(offset + 1, end).toString('utf8');
  const next = end + 2;
  switch (type) {
    case '+':
      return [line, next];
    case '-':
      return [new RespError(`redis: ${line}`), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const length = Number(line);
      if (length === -1) return [null, next];
      if (buffer.length < next + length + 2) return undefined;
      return [buffer.subarray(next, next + length).toString('utf8'), next + length + 2];
    }
    case '*': {
      const count = Number(line);
      if (count === -1) return [null, next];
      const items: RespValue[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parse(buffer, at);
        if (item === undefined) return undefined;
        items.push(item[0]);
        at = item[1];
      }
      return [items, at];
    }
    default:
      return [new RespError(`redis: unexpected reply type ${JSON.stringify(type)}`), buffer.length];
  }
}

/** Opens, runs `work`, closes. */
export async function withRedis<T>(host: string, port: number, password: string | undefined, work: (redis: RedisConnection) => Promise<T>, timeoutMs = 5000): Promise<T> {
  const redis = await RedisConnection.open(host, port, password, timeoutMs);
  try {
    return await work(redis);
  } finally {
    redis.close();
  }
}

/** `INFO` text as key -> value. */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) out[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return out;
}
