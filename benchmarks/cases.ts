// The benchmark cases, and a one-request sanity check of each case through a
// contender before it is measured (right status, right body size; for the
// WebSocket cases an upgrade and one echoed message, with the `ws` package).

import * as http from 'node:http';
import WebSocket = require('ws');

export const BENCH_HOST = 'bench.localhost';
export const UPLOAD_BYTES = 1024 * 1024;

export type HttpCaseName = 'small' | '64k' | 'upload';
export type WsCaseName = 'ws-echo' | 'ws-idle';
export type CaseName = HttpCaseName | WsCaseName;
/** Canonical order (rounds run the cases in this order). */
export const ALL_CASES: CaseName[] = ['small', '64k', 'upload', 'ws-echo', 'ws-idle'];
/** Without --cases: everything but the scale case (ws-idle: --scale or --cases). */
export const DEFAULT_CASES: CaseName[] = ['small', '64k', 'upload', 'ws-echo'];
export const HTTP_CASES: HttpCaseName[] = ['small', '64k', 'upload'];
export const isHttpCase = (n: CaseName): n is HttpCaseName => (HTTP_CASES as CaseName[]).includes(n);

export interface BenchCase {
  kind: 'http';
  name: HttpCaseName;
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

export const CASES: Record<HttpCaseName, BenchCase> = {
  small: { kind: 'http', name: 'small', label: 'GET 100 B', method: 'GET', path: '/small', connections: 50, bodyBytes: 0, expectBytes: 100 },
  '64k': { kind: 'http', name: '64k', label: 'GET 64 KiB', method: 'GET', path: '/64k', connections: 50, bodyBytes: 0, expectBytes: 65536 },
  upload: {
    kind: 'http',
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

/** 100 WebSockets, each with one 64 B text message in flight, echoed by the backend. */
export interface WsEchoCase {
  kind: 'ws-echo';
  name: 'ws-echo';
  label: string;
  path: string;
  connections: number;
  messageBytes: number;
}

/** N idle WebSockets held open through a proxy; the proxy's RSS before and after. */
export interface WsIdleCase {
  kind: 'ws-idle';
  name: 'ws-idle';
  label: string;
  path: string;
  /** Default; --idle-connections overrides. */
  connections: number;
}

export const WS_ECHO: WsEchoCase = { kind: 'ws-echo', name: 'ws-echo', label: 'WebSocket echo 64 B', path: '/ws', connections: 100, messageBytes: 64 };
export const WS_IDLE: WsIdleCase = { kind: 'ws-idle', name: 'ws-idle', label: 'idle WebSockets', path: '/ws', connections: 10000 };

export type AnyCase = BenchCase | WsEchoCase | WsIdleCase;

export function caseDef(n: CaseName): AnyCase {
  if (n === 'ws-echo') return WS_ECHO;
  if (n === 'ws-idle') return WS_IDLE;
  return CASES[n];
}

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

/** Throws a readable error unless a WebSocket through port upgrades and echoes
 * one text and one binary message intact within timeoutMs. */
export function wsPreflight(port: number, wsPath = '/ws', timeoutMs = 5000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const text = 'skiff-bench '.repeat(6).slice(0, 64);
    const binary = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
    let step = 0;
    let settled = false;
    const ws = new WebSocket(`ws://127.0.0.1:${port}${wsPath}`, {
      headers: { Host: BENCH_HOST },
      perMessageDeflate: false,
      handshakeTimeout: timeoutMs,
    });
    const done = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        ws.removeAllListeners('close');
        ws.on('error', () => {});
        ws.terminate();
        reject(err);
      } else {
        ws.close(1000);
        resolve();
      }
    };
    const timer = setTimeout(() => done(new Error(`WebSocket: no echo within ${timeoutMs} ms`)), timeoutMs);
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < 200) chunks.push(c);
        size += c.length;
      });
      const finish = (): void => {
        const body = Buffer.concat(chunks).toString('utf8', 0, 120).replace(/\s+/g, ' ').trim();
        const rerr = res.headers['x-cf-routererror'];
        done(new Error(`upgrade answered ${res.statusCode}${rerr ? ` ${String(rerr)}` : ''}${body ? ` (${body})` : ''}`));
      };
      res.on('end', finish);
      res.on('error', finish);
    });
    ws.on('error', (err) => done(new Error(`WebSocket: ${err.message}`)));
    ws.on('close', (code) => done(new Error(`WebSocket closed before the echo (code ${code})`)));
    ws.on('open', () => ws.send(text));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (step === 0) {
        if (isBinary || data.toString('utf8') !== text) {
          done(new Error('WebSocket: text echo differs'));
          return;
        }
        step = 1;
        ws.send(binary);
      } else if (step === 1) {
        if (!isBinary || !data.equals(binary)) {
          done(new Error('WebSocket: binary echo differs'));
          return;
        }
        done();
      }
    });
  });
}
