// What the services node asks of each service's backend. Every step is
// idempotent: the node may ask again after a restart half-way, and the
// second time finds done what the first did.

import { existsSync, readdirSync, readlinkSync, readFileSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import type { Logger } from '../bus/log';
import type { ServiceBindReply, ServiceLabel } from '../bus/platform';
import type { Layout } from './layout';
import type { SecretStore } from './secrets';
import type { InstanceRecord } from './store';

export interface BackendContext {
  layout: Layout;
  secrets: SecretStore;
  /** The address backends listen on and credentials name. */
  host: string;
  log: Logger;
  /** A free port of the node's --ports, not held by any instance. */
  allocatePort: () => Promise<number>;
  /** Called when a backend process that died has been started again (counted in the node's metrics). */
  restarted: (label: ServiceLabel) => void;
}

export interface Health {
  healthy: boolean;
  detail: string;
}

/** Something of a service that no record names, found by a sweep. */
export interface Stray {
  service: ServiceLabel;
  /** "redis-server process", "directory", "database", "role". */
  kind: string;
  /** Its name: a path, a pid, a database. */
  name: string;
  /** What the sweep did: stopped a process or removed what holds no data; only reported what may hold data. */
  action: 'stopped' | 'removed' | 'reported';
}

export interface Backend {
  readonly label: ServiceLabel;
  /** A port of --ports per instance (redis). */
  readonly needsPort: boolean;
  /** An id of --service-ids per instance (redis: its uid; filesystem: its gid). */
  readonly needsSid: boolean;
  /** Why this node cannot run the service (one line), or undefined. */
  unavailable(): string | undefined;
  /** Ports held outside any instance record (the postgresql cluster's). */
  reservedPorts(): number[];
  /** At the node's start, before any instance: brings up what runs for all of them. */
  start(mine: InstanceRecord[]): Promise<void>;
  /** The instance exists and runs afterwards. */
  create(record: InstanceRecord): Promise<void>;
  /** Nothing of the instance is left afterwards (its bindings included). */
  remove(record: InstanceRecord): Promise<void>;
  /** The app may use the instance afterwards; the same app gets the same credentials. */
  bind(record: InstanceRecord, app: string): Promise<ServiceBindReply>;
  /** The app's own access is revoked afterwards, where the service has any of its own. */
  unbind(record: InstanceRecord, app: string): Promise<void>;
  health(record: InstanceRecord): Promise<Health>;
  /** What of this service exists on the node that none of `mine` (this node's records) names. */
  sweep(mine: InstanceRecord[]): Promise<Stray[]>;
  /** Stops every backend process. */
  stop(): Promise<void>;
}

/** An executable by name on PATH or in the usual sbin directories. */
export function findBinary(name: string, extraDirs: string[] = []): string | undefined {
  const dirs = [...extraDirs, ...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/sbin'];
  return dirs.map((dir) => join(dir, name)).find((path) => existsSync(path));
}

/** Whether nothing listens on host:port (binding it succeeds). */
export function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Entries of a directory; [] when it does not exist. */
export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Bytes under `dir` (files as allocated on disk), walking at most `limit`
 * entries: an approximation for a status line, not an accounting.
 */
export async function diskUsage(dir: string, limit = 200_000): Promise<{ bytes: number; complete: boolean }> {
  let bytes = 0;
  let seen = 0;
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop()!;
    let names: string[];
    try {
      names = await readdir(current);
    } catch {
      continue;
    }
    for (const name of names) {
      if (++seen > limit) return { bytes, complete: false };
      const path = join(current, name);
      try {
        const info = await lstat(path);
        bytes += info.blocks * 512;
        if (info.isDirectory()) pending.push(path);
      } catch {
        // removed meanwhile
      }
    }
  }
  return { bytes, complete: true };
}

/** Processes whose command name is `comm` (as /proc/<pid>/comm shows it), with their working directory. */
export function processesNamed(comm: string): Array<{ pid: number; cwd: string | undefined }> {
  const found: Array<{ pid: number; cwd: string | undefined }> = [];
  for (const entry of listDir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== comm) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      let cwd: string | undefined;
      try {
        cwd = readlinkSync(`/proc/${entry}/cwd`);
      } catch {
        cwd = undefined;
      }
      found.push({ pid: Number(entry), cwd });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Calls `check` until it resolves true or `timeoutMs` passes; the last error, if any, explains a timeout. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<{ ok: boolean; error?: string }> {
  const deadline = Date.now() + timeoutMs;
  let error: string | undefined;
  for (;;) {
    try {
      if (await check()) return { ok: true };
    } catch (err) {
      error = (err as Error).message;
    }
    if (Date.now() >= deadline) return { ok: false, error };
    await sleep(intervalMs);
  }
}

/** host:port for a URI (an IPv6 address in brackets). */
export function uriHost(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
