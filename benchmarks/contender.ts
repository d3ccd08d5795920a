// What the harness needs to know about a running contender.

import type { Managed } from './procs';

/**
 * One thread or worker each: skiff (the router), nginx (1 worker), haproxy
 * (nbthread 1), caddy (GOMAXPROCS=1). Two each: skiff-t2 (`--threads 2`),
 * nginx-w2 (2 workers), haproxy-t2 (nbthread 2), caddy-t2 (GOMAXPROCS=2).
 */
export type ContenderName = 'direct' | 'skiff' | 'skiff-t2' | 'nginx' | 'nginx-w2' | 'haproxy' | 'haproxy-t2' | 'caddy' | 'caddy-t2';
export const ALL_CONTENDERS: ContenderName[] = ['direct', 'skiff', 'nginx', 'haproxy', 'caddy', 'skiff-t2', 'nginx-w2', 'haproxy-t2', 'caddy-t2'];

/** Threads (or worker processes) a contender proxies with: rows compare within the same count. */
export function threadsOf(name: ContenderName): number {
  return name.endsWith('-t2') || name.endsWith('-w2') ? 2 : 1;
}

/** The peer of `kind` with the same thread count as `name`. */
export function peerOf(name: ContenderName, kind: 'nginx' | 'haproxy' | 'caddy'): ContenderName {
  if (threadsOf(name) === 1) return kind;
  return kind === 'nginx' ? 'nginx-w2' : kind === 'haproxy' ? 'haproxy-t2' : 'caddy-t2';
}

export interface Contender {
  name: ContenderName;
  /** Port on 127.0.0.1 the loader targets (always with Host: bench.localhost). */
  port: number;
  /** Processes whose utime+stime count as proxy CPU (empty for direct). Re-read before each measurement. */
  proxyPids(): number[];
  /** The process that must stay alive for the contender to be usable. */
  main?: Managed;
  /** Ends everything the contender started, by pid. */
  stop(): Promise<void>;
}

/** The backend itself, no proxy in between. */
export function directContender(backendPort: number): Contender {
  return {
    name: 'direct',
    port: backendPort,
    proxyPids: () => [],
    stop: async () => {},
  };
}
