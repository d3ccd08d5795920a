// The app directory a build leaves is checked, not trusted, before the
// stager (root) packs it: walked with lstat, never following a link, once
// every process of the build is gone so nothing changes it meanwhile. It may
// hold directories, regular files and symlinks that stay inside it; not a
// symlink out, a device, fifo or socket, a file of another owner (a hard
// link to a root file looks like one) nor a hard link to a file outside.

import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DROPLET_APP_DIR } from '../../bus/platform';
import { judgeSymlink, type TreeEntry } from '../../bus/symlinks';
import { StagingError } from './errors';

interface LinkedFile {
  path: string;
  nlink: number;
  seen: number;
}

function kindOf(stat: { isCharacterDevice(): boolean; isBlockDevice(): boolean; isFIFO(): boolean; isSocket(): boolean }): string {
  if (stat.isCharacterDevice()) return 'character device';
  if (stat.isBlockDevice()) return 'block device';
  if (stat.isFIFO()) return 'fifo';
  if (stat.isSocket()) return 'socket';
  return 'file of an unknown kind';
}

/** Throws a StagingError naming the first entry of `appDir` that may not go into a droplet; `owner` is the uid the build ran as. */
export async function checkBuiltApp(appDir: string, owner: number): Promise<void> {
  const shown = (rel: string) => (rel === '' ? DROPLET_APP_DIR : `${DROPLET_APP_DIR}/${rel}`);
  const entries = new Map<string, TreeEntry>();
  const links: Array<{ rel: string; target: string }> = [];
  const linked = new Map<string, LinkedFile>();
  const pending = [''];
  while (pending.length > 0) {
    const rel = pending.pop()!;
    const path = rel === '' ? appDir : join(appDir, rel);
    const stat = await lstat(path, { bigint: true });
    if (stat.uid !== BigInt(owner)) {
      throw new StagingError(`the build left a file it does not own: ${shown(rel)} (owner uid ${stat.uid}, the build ran as ${owner})`);
    }
    if (stat.isDirectory()) {
      entries.set(rel, 'dir');
      const names = (await readdir(path)).sort().reverse();
      for (const name of names) pending.push(rel === '' ? name : `${rel}/${name}`);
    } else if (stat.isSymbolicLink()) {
      const target = await readlink(path);
      entries.set(rel, { symlink: target });
      links.push({ rel, target });
    } else if (stat.isFile()) {
      entries.set(rel, 'file');
      if (stat.nlink > 1n) {
        const key = `${stat.dev}:${stat.ino}`;
        const known = linked.get(key);
        if (known) known.seen++;
        else linked.set(key, { path: rel, nlink: Number(stat.nlink), seen: 1 });
      }
    } else {
      throw new StagingError(`the build left a ${kindOf(stat)}, which a droplet cannot hold: ${shown(rel)}`);
    }
  }
  for (const file of linked.values()) {
    if (file.seen < file.nlink) throw new StagingError(`the build left a hard link to a file outside the app: ${shown(file.path)}`);
  }
  for (const { rel, target } of links) {
    const verdict = judgeSymlink(rel, (path) => entries.get(path));
    if (verdict === 'outside') throw new StagingError(`the build left a symlink that leads outside the app: ${shown(rel)} -> ${target}`);
    if (verdict === 'loop') throw new StagingError(`the build left a symlink loop: ${shown(rel)} -> ${target}`);
  }
}
