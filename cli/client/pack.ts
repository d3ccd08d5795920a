// Packs an app directory into a tar.gz for `PUT /apps/:name/application`:
// everything but `.git` (at any depth) and what `.cfignore` / `.skiffignore`
// exclude; node_modules goes along unless ignored. Written to a temporary
// file first, so the upload knows its size and sha256 before it starts.

import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create as createTar } from 'tar';
import { IgnoreRules } from './ignore';

export const IGNORE_FILES = ['.cfignore', '.skiffignore'] as const;

export interface PackedApp {
  /** The tar.gz; remove it with `dispose()`. */
  path: string;
  size: number;
  sha256: string;
  /** Files and links packed (directories not counted). */
  fileCount: number;
  dispose(): void;
}

/** Relative paths to pack, directories before their contents, "/"-separated. */
export function listAppFiles(root: string): { entries: string[]; fileCount: number } {
  const sources = IGNORE_FILES.map((name) => join(root, name))
    .filter((path) => existsSync(path))
    .map((path) => readFileSync(path, 'utf8'));
  const rules = new IgnoreRules(...sources);
  const entries: string[] = [];
  let fileCount = 0;
  const walk = (relativeDir: string) => {
    const names = readdirSync(join(root, relativeDir)).sort();
    for (const name of names) {
      const relative = relativeDir === '' ? name : `${relativeDir}/${name}`;
      const stats = lstatSync(join(root, relative));
      const isDirectory = stats.isDirectory();
      if (name === '.git' || rules.ignores(relative, isDirectory)) continue;
      if (isDirectory) {
        entries.push(relative);
        walk(relative);
      } else if (stats.isFile() || stats.isSymbolicLink()) {
        entries.push(relative);
        fileCount++;
      }
      // Sockets, FIFOs and devices are not app bits.
    }
  };
  walk('');
  return { entries, fileCount };
}

export async function packApp(root: string): Promise<PackedApp> {
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`${root} is not a directory`);
  const { entries, fileCount } = listAppFiles(root);
  if (fileCount === 0) throw new Error(`nothing to push in ${root} (empty, or everything is ignored)`);
  const scratch = mkdtempSync(join(tmpdir(), 'skiff-push-'));
  const dispose = () => rmSync(scratch, { recursive: true, force: true });
  try {
    const path = join(scratch, 'app.tar.gz');
    // portable: no owner names or ids from this machine; noDirRecurse: the list above is the whole truth.
    await createTar({ gzip: true, cwd: root, file: path, portable: true, noDirRecurse: true }, entries);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    return { path, size: statSync(path).size, sha256: hash.digest('hex'), fileCount, dispose };
  } catch (error) {
    dispose();
    throw error;
  }
}
