// Where a services node keeps things, under <data-dir>/services/:
//
//   services/               0711 root   traverse-only: apps reach their filesystem directories through it
//     secrets/              0700 root   <id>.json: an instance's passwords (secrets.ts)
//     logs/                 0700 root   each backend's output: redis-<id>.log, postgresql.log
//     postgresql.json       0600 root   the cluster's port
//     redis/                0711 root
//       <id>/               0700 uid    a redis-server's config (0600), append-only files; the uid is the instance's
//     postgresql/           0700 postgres
//       data/                           the cluster (initdb), run by the node as the postgres user
//       run/                            its Unix socket: only root and postgres reach it
//     filesystem/           0711 root
//       <id>/               2770 root:gid  shared by the bound apps, whose processes get the gid
//
// As root, every directory and file is owned as above; otherwise all of it
// is the node's own user's (and the apps', which then run as that user too).

import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class Layout {
  readonly root: string;

  constructor(readonly dataDir: string) {
    this.root = join(dataDir, 'services');
  }

  get secrets(): string {
    return join(this.root, 'secrets');
  }
  get logs(): string {
    return join(this.root, 'logs');
  }
  get redis(): string {
    return join(this.root, 'redis');
  }
  redisDir(id: string): string {
    return join(this.redis, id);
  }
  get postgresql(): string {
    return join(this.root, 'postgresql');
  }
  get postgresqlState(): string {
    return join(this.root, 'postgresql.json');
  }
  get filesystem(): string {
    return join(this.root, 'filesystem');
  }
  filesystemDir(id: string): string {
    return join(this.filesystem, id);
  }

  /** The directories every node has. */
  prepare(): void {
    ensureDir(this.dataDir, undefined);
    ensureDir(this.root, 0o711);
    ensureDir(this.secrets, 0o700);
    ensureDir(this.logs, 0o700);
  }
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * A directory with this mode (and owner, as root): created when missing,
 * corrected when not. `mode` undefined: created 0711 if missing, else left.
 */
export function ensureDir(path: string, mode: number | undefined, owner?: { uid: number; gid: number }): void {
  if (!existsSync(path)) mkdirSync(path, { recursive: true, mode: mode ?? 0o711 });
  if (owner !== undefined && isRoot()) chownSync(path, owner.uid, owner.gid);
  // After chown, which clears the setgid bit.
  if (mode !== undefined) chmodSync(path, mode);
}

/** A file only its owner reads, written whole (a crash leaves the old one or the new one). */
export function writePrivate(path: string, text: string, owner?: { uid: number; gid: number }): void {
  const temp = `${path}.tmp`;
  writeFileSync(temp, text, { mode: 0o600 });
  chmodSync(temp, 0o600);
  if (owner !== undefined && isRoot()) chownSync(temp, owner.uid, owner.gid);
  renameSync(temp, path);
}

export function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** A system user's uid and gid from /etc/passwd (`postgres`), or undefined. */
export function systemUser(name: string): { uid: number; gid: number } | undefined {
  let text: string;
  try {
    text = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields.length >= 4) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  return undefined;
}
