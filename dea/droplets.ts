// Droplets from the JetStream object store, cached on disk by sha1 and
// unpacked into instance directories.

import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { list as listTar, x as extractTar, type ReadEntry } from 'tar';
import type { Bus } from '../bus/connection';
import { DROPLET_APP_DIR, DROPLET_INFO_FILE, ObjectStores, type DropletInfo } from '../bus/platform';
import { openObjectStore } from '../bus/jetstream';
import { judgeSymlink, type TreeEntry } from '../bus/symlinks';

export class DropletError extends Error {
  override name = 'DropletError';
}

const SHA1_HEX = /^[0-9a-f]{40}$/;

export class DropletCache {
  /** One download per sha1 at a time: instances of one app starting together share it. */
  private readonly downloads = new Map<string, Promise<string>>();

  constructor(
    private readonly bus: Bus,
    private readonly dir: string,
    private readonly timeoutMs = 120_000,
  ) {}

  /** Path of the cached tarball, downloading it when absent. */
  fetch(sha1: string, objectName: string = sha1): Promise<string> {
    if (!SHA1_HEX.test(sha1)) return Promise.reject(new DropletError('droplet sha1 must be 40 lowercase hex digits'));
    const path = join(this.dir, `${sha1}.tgz`);
    let pending = this.downloads.get(sha1);
    if (!pending) {
      pending = this.ensure(sha1, objectName, path).finally(() => this.downloads.delete(sha1));
      this.downloads.set(sha1, pending);
    }
    return pending;
  }

  private async ensure(sha1: string, objectName: string, path: string): Promise<string> {
    if (await stat(path).then((s) => s.isFile(), () => false)) return path;
    await mkdir(this.dir, { recursive: true });
    const partial = `${path}.${process.pid}.partial`;
    try {
      const got = await withTimeout(this.download(objectName, partial), this.timeoutMs, `fetching droplet ${objectName}`);
      // The cache is keyed by sha1 and shared by every later start: never keep bytes under the wrong name.
      if (got !== sha1) throw new DropletError(`droplet ${objectName} has sha1 ${got}, expected ${sha1}`);
      await rename(partial, path);
    } finally {
      await rm(partial, { force: true });
    }
    return path;
  }

  private async download(objectName: string, partial: string): Promise<string> {
    let store;
    try {
      const js = this.bus.nats.jetstream();
      store = await openObjectStore(js, ObjectStores.droplets);
    } catch (err) {
      throw new DropletError(`droplet store ${ObjectStores.droplets} unavailable: ${(err as Error).message}`);
    }
    const result = await store.get(objectName);
    if (!result) throw new DropletError(`droplet ${objectName} not found in ${ObjectStores.droplets}`);
    const hash = createHash('sha1');
    const out = createWriteStream(partial, { mode: 0o600 });
    try {
      const reader = result.data.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        hash.update(value);
        if (!out.write(value)) await once(out, 'drain');
      }
      const failed = await result.error;
      if (failed) throw new DropletError(`droplet ${objectName} download failed: ${failed.message}`);
    } finally {
      out.end();
      await once(out, 'close');
    }
    return hash.digest('hex');
  }

  async remove(sha1: string): Promise<void> {
    await rm(join(this.dir, `${sha1}.tgz`), { force: true });
  }
}

// What a droplet may hold. Not hard links (one could name a file outside),
// devices or fifos, whatever the stager that packed it did.
const DROPLET_ENTRY_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'GNUDumpDir', 'SymbolicLink']);

const ENTRY_KINDS: Record<string, string> = {
  Link: 'a hard link',
  CharacterDevice: 'a character device',
  BlockDevice: 'a block device',
  FIFO: 'a fifo',
};

/**
 * Reads the droplet's entries without writing anything, and throws a
 * DropletError for the first it may not hold: a path out of the instance
 * directory, a hard link, a device or fifo, or a symlink that leads outside
 * the instance directory (judged with the droplet's other symlinks, as the
 * kernel would follow them).
 */
export async function checkDropletEntries(tarball: string): Promise<void> {
  const entries = new Map<string, TreeEntry>();
  const links: Array<{ path: string; target: string }> = [];
  let refused: string | undefined;
  const refuse = (reason: string) => {
    refused ??= reason;
  };
  try {
    await listTar({
      file: tarball,
      strict: true,
      onReadEntry: (entry: ReadEntry) => {
        const name = entry.path;
        const parts = name.split('/').filter((part) => part !== '' && part !== '.');
        if (name.startsWith('/') || parts.includes('..')) {
          refuse(`droplet entry ${JSON.stringify(name)} points outside the instance directory`);
          return;
        }
        const path = parts.join('/');
        if (!DROPLET_ENTRY_TYPES.has(entry.type)) {
          refuse(`droplet entry ${JSON.stringify(name)} is ${ENTRY_KINDS[entry.type] ?? `of type ${entry.type}`}, which a droplet cannot hold`);
          return;
        }
        if (entry.type === 'SymbolicLink') {
          const target = entry.linkpath ?? '';
          entries.set(path, { symlink: target });
          links.push({ path, target });
        } else {
          entries.set(path, entry.type === 'Directory' || entry.type === 'GNUDumpDir' ? 'dir' : 'file');
        }
      },
    });
  } catch (err) {
    throw new DropletError(`droplet cannot be read: ${(err as Error).message}`);
  }
  if (refused !== undefined) throw new DropletError(refused);
  for (const { path, target } of links) {
    const verdict = judgeSymlink(path, (p) => entries.get(p));
    if (verdict !== 'inside') {
      throw new DropletError(`droplet entry ${JSON.stringify(path)} is a symlink ${verdict === 'loop' ? 'loop' : 'leading outside the instance directory'} (-> ${target})`);
    }
  }
}

/**
 * Unpacks a droplet into dir and reads its droplet.json. Entries are owned by
 * owner when given (the app's user). The droplet is checked first
 * (checkDropletEntries), so nothing is written from one that is refused.
 */
export async function unpackDroplet(tarball: string, dir: string, owner?: { uid: number; gid: number }): Promise<DropletInfo> {
  await checkDropletEntries(tarball);
  try {
    await extractTar({ file: tarball, cwd: dir, strict: true, preservePaths: false, ...(owner ? { uid: owner.uid, gid: owner.gid, preserveOwner: false } : { preserveOwner: false }) });
  } catch (err) {
    throw new DropletError(`droplet cannot be unpacked: ${(err as Error).message}`);
  }
  let info: unknown;
  try {
    info = JSON.parse(await readFile(join(dir, DROPLET_INFO_FILE), 'utf8'));
  } catch {
    throw new DropletError(`droplet has no readable ${DROPLET_INFO_FILE}`);
  }
  const appDir = await stat(join(dir, DROPLET_APP_DIR)).catch(() => undefined);
  if (!appDir?.isDirectory()) throw new DropletError(`droplet has no ${DROPLET_APP_DIR}/ directory`);
  const fields = (typeof info === 'object' && info !== null ? info : {}) as Record<string, unknown>;
  const text = (key: string) => (typeof fields[key] === 'string' ? (fields[key] as string) : '');
  return { runtime: text('runtime'), framework: text('framework'), start_command: text('start_command') };
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new DropletError(`${what}: no answer within ${ms / 1000} s`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
