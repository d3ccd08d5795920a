// The reference proxies: nginx, HAProxy and Caddy, configured as measured in
// /work/shared/uws-notes.md, each with its own config in a temp dir, started
// on a free loopback port and ended by pid.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Contender } from './contender';
import { childPids, freePort, sleep, startProcess, stopProcess, waitForPort, which, type Managed } from './procs';

/** Changes for the ws-idle instance, which holds 2 sockets per idle WebSocket. */
export interface NginxOptions {
  /** worker_processes (default 1). */
  workers?: number;
  /** Subdirectory of the temp dir (default "nginx"). */
  dirName?: string;
  /** worker_connections (default 4096). */
  workerConnections?: number;
  /** worker_rlimit_nofile: the worker's own descriptor limit (default: inherited). */
  workerRlimitNofile?: number;
  /** proxy_read_timeout / proxy_send_timeout in s (default nginx's 60 s, which also ends idle WebSockets). */
  proxyTimeoutS?: number;
  /** More ports of the same backend, as further upstream servers (idle runs beyond one port's ~28k source ports). */
  extraBackendPorts?: number[];
}

export function nginxConfig(dir: string, port: number, backendPort: number, o: NginxOptions = {}): string {
  return `# written by benchmarks/peers.ts
worker_processes ${o.workers ?? 1};
daemon off;
master_process on;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
${o.workerRlimitNofile ? `worker_rlimit_nofile ${o.workerRlimitNofile};\n` : ''}
events {
    worker_connections ${o.workerConnections ?? 4096};
}

http {
    access_log off;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;

    # Client side: do not close keep-alive connections after 1000 requests
    # (nginx 1.22 default), HAProxy and the Skiff router do not either.
    keepalive_requests 1000000;

    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }

    upstream bench_backend {
        server 127.0.0.1:${backendPort};${(o.extraBackendPorts ?? []).map((p) => `\n        server 127.0.0.1:${p};`).join('')}
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:${port};
        server_name bench.localhost;
        client_max_body_size 4g;

        location / {
            proxy_pass http://bench_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_request_buffering off;${o.proxyTimeoutS ? `
            proxy_read_timeout ${o.proxyTimeoutS}s;
            proxy_send_timeout ${o.proxyTimeoutS}s;` : ''}
        }
    }
}
`;
}

export function haproxyConfig(port: number, backendPort: number, threads = 1): string {
  return `# written by benchmarks/peers.ts
global
    nbthread ${threads}
    maxconn 4000

defaults
    mode http
    option forwardfor
    http-reuse always
    maxconn 4000
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s
    # Upgraded (WebSocket) connections: idle limit once the 101 went through.
    timeout tunnel 1h

frontend bench_in
    bind 127.0.0.1:${port}
    default_backend bench_backend

backend bench_backend
    server app1 127.0.0.1:${backendPort}
`;
}

export async function startNginx(tmpDir: string, backendPort: number, o: NginxOptions = {}): Promise<Contender> {
  const bin = which('nginx');
  if (!bin) throw new NotInstalled('nginx');
  const dir = path.join(tmpDir, o.dirName ?? (o.workers && o.workers > 1 ? `nginx-w${o.workers}` : 'nginx'));
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, nginxConfig(dir, port, backendPort, o));
  const m = startProcess({ name: 'nginx', cmd: bin, args: ['-p', `${dir}/`, '-c', conf, '-e', `${dir}/error.log`] });
  try {
    await waitForPort(m, port);
    // The master forks its workers; find them (the workers are the proxy, not the master).
    let workers: number[] = [];
    for (let i = 0; i < 50 && workers.length < (o.workers ?? 1); i++) {
      workers = childPids(m.pid);
      if (workers.length < (o.workers ?? 1)) await sleep(50);
    }
    if (workers.length === 0) throw new Error('nginx: no worker process found');
    m.extraPids = workers;
  } catch (err) {
    const log = readTail(path.join(dir, 'error.log'));
    await stopProcess(m);
    throw new Error(`${(err as Error).message}${log ? ` | error.log: ${log}` : ''}`);
  }
  return {
    name: o.workers === 2 ? 'nginx-w2' : 'nginx',
    port,
    main: m,
    proxyPids: () => {
      // Re-read in case the master replaced a worker.
      const w = childPids(m.pid);
      if (w.length > 0) m.extraPids = w;
      // Every worker counts; the master only reads its config.
      return w;
    },
    stop: () => stopProcess(m),
  };
}

export async function startHaproxy(tmpDir: string, backendPort: number, threads = 1): Promise<Contender> {
  const bin = which('haproxy');
  if (!bin) throw new NotInstalled('haproxy');
  const dir = path.join(tmpDir, threads > 1 ? `haproxy-t${threads}` : 'haproxy');
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(conf, haproxyConfig(port, backendPort, threads));
  // -db: foreground, no master-worker: one process (with its threads), which is the proxy.
  const m = startProcess({ name: 'haproxy', cmd: bin, args: ['-db', '-f', conf] });
  return singleProcessContender(threads === 2 ? 'haproxy-t2' : 'haproxy', m, port);
}

/**
 * Caddy 2 (a Go reverse proxy, of the same family as gorouter). A site
 * address `http://127.0.0.1:PORT` would match only that Host and answer
 * others with an empty 200, so the site is `http://:PORT` bound to 127.0.0.1.
 * Its reverse_proxy keeps upstream connections alive and carries WebSockets
 * by default. `procs` is GOMAXPROCS: the OS threads running Go code at once.
 */
export function caddyConfig(port: number, backendPort: number): string {
  return `# written by benchmarks/peers.ts
{
	admin off
	auto_https off
}

http://:${port} {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:${backendPort}
}
`;
}

export async function startCaddy(tmpDir: string, backendPort: number, procs = 1): Promise<Contender> {
  const bin = which('caddy');
  if (!bin) throw new NotInstalled('caddy');
  const dir = path.join(tmpDir, procs > 1 ? `caddy-t${procs}` : 'caddy');
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'Caddyfile');
  fs.writeFileSync(conf, caddyConfig(port, backendPort));
  const m = startProcess({
    name: 'caddy',
    cmd: bin,
    args: ['run', '--config', conf, '--adapter', 'caddyfile'],
    // Caddy keeps certificates and autosaved config under these; nothing of it outlives the run.
    env: { ...process.env, GOMAXPROCS: String(procs), HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
  });
  return singleProcessContender(procs === 2 ? 'caddy-t2' : 'caddy', m, port);
}

/** A proxy that is one process (threads inside it): ready once its port opens, stopped if it never does. */
async function singleProcessContender(name: Contender['name'], m: Managed, port: number): Promise<Contender> {
  try {
    await waitForPort(m, port);
  } catch (err) {
    await stopProcess(m);
    throw err;
  }
  return { name, port, main: m, proxyPids: () => [m.pid], stop: () => stopProcess(m) };
}

export class NotInstalled extends Error {
  constructor(public readonly tool: string) {
    super(`${tool} not installed: skipped`);
  }
}

function readTail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '';
  }
}
