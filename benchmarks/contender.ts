// What the harness needs to know about a running contender.

import type { Managed } from './procs';

/** skiff: the router with one thread; skiff-t2: `--threads 2`. */
export type ContenderName = 'direct' | 'skiff' | 'skiff-t2' | 'nginx' | 'haproxy';
export const ALL_CONTENDERS: ContenderName[] = ['direct', 'skiff', 'skiff-t2', 'nginx', 'haproxy'];

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
