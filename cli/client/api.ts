// The one HTTP client of the CLI: every call to the controller API
// (control/API.md) goes through here, so errors read the same everywhere.
// The token goes only into the Authorization header, never into a message.

import { createReadStream } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { SKIFF_VERSION } from '../../bus/version';

/** The API answered with an error status. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: number | undefined,
    description: string,
  ) {
    super(description);
  }
}

/** No answer: connection refused, unknown host, timeout. */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  headers?: OutgoingHttpHeaders;
  /** Idle time without bytes either way before giving up. Default 30 s. */
  idleTimeoutMs?: number;
}

const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
const MAX_JSON_BYTES = 64 * 1024 * 1024;

export class Api {
  constructor(
    readonly target: string,
    private readonly token?: string,
  ) {}

  /** A JSON call; resolves with the parsed body (undefined for an empty one, e.g. 204). */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.send(method, path, options);
    const text = (await readBody(response, MAX_JSON_BYTES)).toString('utf8');
    if (text.trim() === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(response.statusCode ?? 0, undefined, `${method} ${path}: the API answered with something that is not JSON`);
    }
  }

  /** A call whose body the caller reads (files, staging log); error statuses still throw. */
  async stream(method: string, path: string, options: RequestOptions = {}): Promise<IncomingMessage> {
    return this.send(method, path, options);
  }

  /** PUT a file as the body, reporting bytes sent. */
  async upload<T>(path: string, file: string, size: number, headers: OutgoingHttpHeaders, onProgress: (sent: number) => void): Promise<T> {
    const body = createReadStream(file);
    let sent = 0;
    body.on('data', (chunk) => {
      sent += chunk.length;
      onProgress(sent);
    });
    const response = await this.send('PUT', path, { headers: { ...headers, 'Content-Length': size }, body, idleTimeoutMs: 120_000 });
    const text = (await readBody(response, MAX_JSON_BYTES)).toString('utf8');
    try {
      return (text.trim() === '' ? undefined : JSON.parse(text)) as T;
    } catch {
      throw new ApiError(response.statusCode ?? 0, undefined, 'upload: the API answered with something that is not JSON');
    }
  }

  url(path: string, query?: Query): URL {
    const url = new URL(this.target + path);
    for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value));
    return url;
  }

  private send(method: string, path: string, options: RequestOptions): Promise<IncomingMessage> {
    const url = this.url(path, options.query);
    const headers: OutgoingHttpHeaders = { Accept: 'application/json', 'User-Agent': `skiff-cli/${SKIFF_VERSION}`, ...options.headers };
    if (this.token !== undefined) headers.Authorization = `Bearer ${this.token}`;
    let payload: Buffer | undefined;
    const body = options.body;
    if (body !== undefined && !isReadable(body)) {
      payload = Buffer.from(JSON.stringify(body));
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = payload.length;
    }
    const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, { method, headers });
      req.setTimeout(idleTimeoutMs, () => req.destroy(new UnreachableError(`no answer from ${this.target} within ${Math.round(idleTimeoutMs / 1000)} s`)));
      req.on('error', (error) => reject(error instanceof UnreachableError ? error : this.unreachable(error)));
      req.on('response', (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          resolve(response);
          return;
        }
        readBody(response, 1024 * 1024).then(
          (raw) => reject(apiErrorFrom(status, raw)),
          (error: unknown) => reject(this.unreachable(error as Error)),
        );
      });
      if (payload !== undefined) req.end(payload);
      else if (isReadable(body)) {
        body.on('error', (error: Error) => req.destroy(error));
        body.pipe(req);
      } else req.end();
    });
  }

  unreachable(error: Error): UnreachableError {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ECONNREFUSED' ? 'connection refused'
      : code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'unknown host'
      : code === 'ECONNRESET' ? 'connection reset'
      : code ?? error.message;
    return new UnreachableError(`cannot reach ${this.target}: ${why} (is the controller running? see \`skiff target\`)`);
  }
}

function isReadable(value: unknown): value is NodeJS.ReadableStream {
  return typeof value === 'object' && value !== null && typeof (value as { pipe?: unknown }).pipe === 'function';
}

export function apiErrorFrom(status: number, raw: Buffer): ApiError {
  let code: number | undefined;
  let description: string | undefined;
  try {
    const parsed = JSON.parse(raw.toString('utf8')) as { code?: unknown; description?: unknown };
    if (typeof parsed.code === 'number') code = parsed.code;
    if (typeof parsed.description === 'string' && parsed.description.trim() !== '') description = parsed.description;
  } catch {
    // Not the API's error shape (a proxy's page, say): the status says enough.
  }
  return new ApiError(status, code, oneLine(description ?? `the API answered HTTP ${status}`));
}

/** Server text shown to the user stays on one line and free of terminal escapes. */
export function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
}

export function readBody(response: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        response.destroy(new Error(`answer larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    response.on('end', () => resolve(Buffer.concat(chunks)));
    response.on('error', reject);
    response.on('aborted', () => reject(new Error('the answer was cut off')));
  });
}
