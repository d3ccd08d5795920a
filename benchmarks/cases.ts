// The benchmark cases, and a one-request sanity check of each case through a
// contender before it is measured (right status, right body size).

import * as http from 'node:http';

export const BENCH_HOST = 'bench.localhost';
export const UPLOAD_BYTES = 1024 * 1024;

export type CaseName = 'small' | '64k' | 'upload';
export const ALL_CASES: CaseName[] = ['small', '64k', 'upload'];

export interface BenchCase {
  name: CaseName;
  label: string;
  method: 'GET' | 'POST';
  path: string;
  connections: number;
  /** Request body size (0: none). */
  bodyBytes: number;
  /** Expected response body length. */
  expectBytes: number;
  /** Expected response body, when short enough to compare. */
  expectBody?: string;
}

export const CASES: Record<CaseName, BenchCase> = {
  small: { name: 'small', label: 'GET 100 B', method: 'GET', path: '/small', connections: 50, bodyBytes: 0, expectBytes: 100 },
  '64k': { name: '64k', label: 'GET 64 KiB', method: 'GET', path: '/64k', connections: 50, bodyBytes: 0, expectBytes: 65536 },
  upload: {
    name: 'upload',
    label: 'POST 1 MiB',
    method: 'POST',
    path: '/upload',
    connections: 10,
    bodyBytes: UPLOAD_BYTES,
    expectBytes: String(UPLOAD_BYTES).length,
    expectBody: String(UPLOAD_BYTES),
  },
};

let uploadBody: Buffer | undefined;
export function requestBody(c: BenchCase): Buffer | undefined {
  if (c.bodyBytes === 0) return undefined;
  if (!uploadBody || uploadBody.length !== c.bodyBytes) uploadBody = Buffer.alloc(c.bodyBytes, 'u');
  return uploadBody;
}

export interface SimpleResponse {
  status: number;
  body: Buffer;
}

/** One request to 127.0.0.1:port with Host: bench.localhost, bounded by timeoutMs. */
export function request(port: number, method: string, path: string, body?: Buffer, timeoutMs = 5000): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: {
          Host: BENCH_HOST,
          Connection: 'close',
          ...(body ? { 'Content-Length': String(body.length), 'Content-Type': 'application/octet-stream' } : {}),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Throws a readable error unless the case answers correctly through port. */
export async function preflight(port: number, c: BenchCase): Promise<void> {
  const r = await request(port, c.method, c.path, requestBody(c));
  if (r.status !== 200) {
    const hint = r.body.toString('utf8', 0, Math.min(r.body.length, 120)).replace(/\s+/g, ' ');
    throw new Error(`${c.method} ${c.path} answered ${r.status} (${hint})`);
  }
  if (r.body.length !== c.expectBytes) throw new Error(`${c.method} ${c.path} body ${r.body.length} B, expected ${c.expectBytes} B`);
  if (c.expectBody !== undefined && r.body.toString('utf8') !== c.expectBody) {
    throw new Error(`${c.method} ${c.path} answered "${r.body.toString('utf8').slice(0, 40)}", expected "${c.expectBody}"`);
  }
}
