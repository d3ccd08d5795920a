// The reference proxies: nginx and HAProxy, configured as measured in
// /work/shared/uws-notes.md, each with its own config in a temp dir, started
// on a free loopback port and ended by pid.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Contender } from './contender';
import { childPids, freePort, sleep, startProcess, stopProcess, waitForPort, which } from './procs';

/** Changes for the ws-idle instance, which holds 2 sockets per idle WebSocket. */
export interface NginxOptions {
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
worker_processes 1;
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

export function haproxyConfig(port: number, backendPort: number): string {
  return `# written by benchmarks/peers.ts
global
    nbthread 1
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
  const dir = path.join(tmpDir, o.dirName ?? 'nginx');
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, nginxConfig(dir, port, backendPort, o));
  const m = startProcess({ name: 'nginx', cmd: bin, args: ['-p', `${dir}/`, '-c', conf, '-e', `${dir}/error.log`] });
  try {
    await waitForPort(m, port);
    // The master forks its worker; find it (the worker is the proxy, not the master).
    let workers: number[] = [];
    for (let i = 0; i < 50 && workers.length === 0; i++) {
      workers = childPids(m.pid);
      if (workers.length === 0) await sleep(50);
    }
    if (workers.length === 0) throw new Error('nginx: no worker process found');
    m.extraPids = workers;
  } catch (err) {
    const log = readTail(path.join(dir, 'error.log'));
    await stopProcess(m);
    throw new Error(`${(err as Error).message}${log ? ` | error.log: ${log}` : ''}`);
  }
  return {
    name: 'nginx',
    port,
    main: m,
    proxyPids: () => {
      // Re-read in case the master replaced a worker.
      const w = childPids(m.pid);
      if (w.length > 0) m.extraPids = w;
      return w;
    },
    stop: () => stopProcess(m),
  };
}

export async function startHaproxy(tmpDir: string, backendPort: number): Promise<Contender> {
  const bin = which('haproxy');
  if (!bin) throw new NotInstalled('haproxy');
  const dir = path.join(tmpDir, 'haproxy');
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(conf, haproxyConfig(port, backendPort));
  // -db: foreground, no master-worker: one process, which is the proxy.
  const m = startProcess({ name: 'haproxy', cmd: bin, args: ['-db', '-f', conf] });
  try {
    await waitForPort(m, port);
  } catch (err) {
    await stopProcess(m);
    throw err;
  }
  return {
    name: 'haproxy',
    port,
    main: m,
    proxyPids: () => [m.pid],
    stop: () => stopProcess(m),
  };
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
