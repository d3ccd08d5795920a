// Real routers for tests: `skiff router` as a child process on free ports,
// talking to a real nats-server, plus small node:http backends and a client
// that sees exactly what the router sent back.

import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import type { RouterRegister } from '../bus/messages';
import { eventually, freePort, spawnTracked, terminate, type NatsServer, type TeardownHost } from './harness';

const ROOT = join(__dirname, '..');
const STATUS_USER = 'test';
const STATUS_PASSWORD = 'test-secret';
/** The Authorization header for the status port of a router started with the harness's credentials. */
export const STATUS_AUTH = `Basic ${Buffer.from(`${STATUS_USER}:${STATUS_PASSWORD}`).toString('base64')}`;
export const STATUS_CREDENTIALS: readonly [string, string] = [STATUS_USER, STATUS_PASSWORD];



export interface RouterProcess {
  readonly port: number;
  readonly statusPort: number;
  readonly pid: number;
  /** Everything the router wrote to stderr so far. */
  log(): string;
  varz(): Promise<Record<string, any>>;
  routes(): Promise<Record<string, any[]>>;
  /** Resident set size of the router process, in bytes. */
  rss(): number;
  /** SIGTERM, SIGKILL after 3 s; resolves with the exit code. Idempotent. */
  stop(): Promise<number | null>;
  /** Sends a signal to the router process (by pid). */
  signal(signal: NodeJS.Signals): void;
  /** Settles when the process has exited, with its exit code (null when a signal ended it) and the signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartRouterOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Default true: pass the harness's --status-user/--status-password. False: the router generates them (varz()/routes() then get 401). */
  credentials?: boolean;
  /** Default true: resolve once the router logs "router listening". False: resolve as soon as the process is spawned. */
  waitForListening?: boolean;
}

export async function startRouter(t: TeardownHost, nats: NatsServer, opts: StartRouterOptions = {}): Promise<RouterProcess> {
  const port = await freePort();
  const statusPort = await freePort();
  const args = [
    join(ROOT, 'bin/skiff'),
    'router',
    '--host', '127.0.0.1',
    '--port', String(port),
    '--status-host', '127.0.0.1',
    '--status-port', String(statusPort),
    '--nats', nats.url,
    '--start-delay', '0',
    ...(opts.credentials === false ? [] : ['--status-user', STATUS_USER, '--status-password', STATUS_PASSWORD]),
    ...(opts.args ?? []),
  ];
  const child = spawnTracked(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SKIFF_LOG_LEVEL: 'info', ...opts.env },
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exitStatus = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const exited = exitStatus.then((s) => s.code);
  let stopped: Promise<number | null> | undefined;
  const router: RouterProcess = {
    port,
    statusPort,
    pid: child.pid!,
    log: () => output,
    varz: () => statusJson(statusPort, '/varz'),
    routes: () => statusJson(statusPort, '/routes'),
    signal: (signal) => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
    },
    exited: exitStatus,
    rss: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024,
    stop: () => (stopped ??= terminate(child, 3000)),
  };
  t.teardown(() => router.stop());
  if (opts.waitForListening === false) return router;
  await Promise.race([
    eventually(() => /router listening/.test(output), 'router to listen', 15_000),
    exited.then((code) => {
      throw new Error(`router exited with ${code} before listening:\n${output}`);
    }),
  ]);
  return router;
}

function statusJson(statusPort: number, path: string): Promise<any> {
  return get({
    port: statusPort,
    path,
    headers: { authorization: `Basic ${Buffer.from(`${STATUS_USER}:${STATUS_PASSWORD}`).toString('base64')}` },
  }).then((r) => {
    if (r.status !== 200) throw new Error(`${path}: ${r.status}`);
    return JSON.parse(r.body.toString());
  });
}

/** A NATS client for publishing register messages, closed at teardown. */
export async function busClient(t: TeardownHost, nats: NatsServer): Promise<NatsConnection> {
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  return nc;
}

/** A router.register message as tests send it: `host` defaults to 127.0.0.1; extra fields go out as given. */
export type Registration = Omit<RouterRegister, 'host'> & { host?: string; [extra: string]: unknown };

export async function publish(nc: NatsConnection, subject: string, message: object | string): Promise<void> {
  nc.publish(subject, new TextEncoder().encode(typeof message === 'string' ? message : JSON.stringify(message)));
  await nc.flush();
}

/** Registers and waits until the router's table shows every uri with this endpoint. */
export async function registerRoute(nc: NatsConnection, router: RouterProcess, reg: Registration): Promise<void> {
  const message = { host: '127.0.0.1', ...reg };
  await publish(nc, 'router.register', message);
  const address = `${message.host}:${reg.port}`;
  await eventually(async () => {
    const routes = await router.routes();
    return reg.uris.every((uri) => (routes[uri.toLowerCase()] ?? []).some((e) => e.address === address));
  }, `route ${reg.uris.join(',')} -> ${address}`);
}

export async function unregisterRoute(nc: NatsConnection, router: RouterProcess, reg: Registration): Promise<void> {
  const message = { host: '127.0.0.1', ...reg };
  await publish(nc, 'router.unregister', message);
  const address = `${message.host}:${reg.port}`;
  await eventually(async () => {
    const routes = await router.routes();
    return reg.uris.every((uri) => !(routes[uri.toLowerCase()] ?? []).some((e) => e.address === address));
  }, `route ${reg.uris.join(',')} -> ${address} to go`);
}

export interface Backend {
  readonly port: number;
  readonly server: http.Server;
  /** Requests this backend has received. */
  readonly requests: http.IncomingMessage[];
  close(): Promise<void>;
}

/** A node:http app instance on a free loopback port, closed at teardown. */
export async function startBackend(
  t: TeardownHost,
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_req, res) => res.end('ok'),
  configure?: (server: http.Server) => void,
  serverOptions: http.ServerOptions = {},
): Promise<Backend> {
  const requests: http.IncomingMessage[] = [];
  const server = http.createServer(serverOptions, (req, res) => {
    requests.push(req);
    handler(req, res);
  });
  configure?.(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let closed: Promise<void> | undefined;
  const backend: Backend = {
    port: (server.address() as AddressInfo).port,
    server,
    requests,
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
  t.teardown(() => backend.close());
  return backend;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export interface RequestOptions {
  port: number;
  host?: string;
  path?: string;
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
}

/** One request on a fresh connection, so every request is independent of the last. */
export function get(opts: RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: opts.port,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: { ...(opts.host ? { host: opts.host } : {}), ...opts.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
