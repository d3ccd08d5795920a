// Packs a staged app into a droplet (bus/platform.ts: droplet.json + app/,
// gzipped tar) and computes its sha1, the droplet's name in the store.

import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { create as createTar } from 'tar';
import { DROPLET_APP_DIR, DROPLET_INFO_FILE, type DropletInfo } from '../../bus/platform';
import { STATIC_SERVER_PATH } from './detect';

/** tar's cache of files seen, which never remembers one: every file is packed as a file, never as a hard link. */
class NoLinks<K, V> extends Map<K, V> {
  override set(): this {
    return this;
  }
}

export interface BuiltDroplet {
  file: string;
  sha1: string;
  size: number;
}

/**
 * `dropletDir` holds `app/`; writes droplet.json beside it and packs both
 * into `outFile`.
 */
export async function buildDroplet(dropletDir: string, info: DropletInfo, outFile: string): Promise<BuiltDroplet> {
  const dropletInfo: DropletInfo = { runtime: info.runtime, framework: info.framework, start_command: info.start_command };
  await writeFile(join(dropletDir, DROPLET_INFO_FILE), JSON.stringify(dropletInfo, null, 2) + '\n');
  const hash = createHash('sha1');
  let size = 0;
  const hasher = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  // portable: no uid/gid/user names of the stager machine in the droplet.
  // No hard link entries either (the DEA refuses them): linked files go in as copies.
  const pack = createTar({ gzip: true, cwd: dropletDir, portable: true, linkCache: new NoLinks() }, [DROPLET_INFO_FILE, DROPLET_APP_DIR]);
  await pipeline(pack as unknown as NodeJS.ReadableStream, hasher, createWriteStream(outFile, { mode: 0o600 }));
  return { file: outFile, sha1: hash.digest('hex'), size };
}

/**
 * The static server's source: beside this module when running from the
 * sources (tests), under the repository's control/stager/ when running from
 * dist/ (tsc does not copy .js files).
 */
export function staticServerSource(): string {
  const candidates = [
    join(__dirname, 'static-server.js'),
    join(__dirname, '..', '..', '..', 'control', 'stager', 'static-server.js'),
  ];
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error(`static-server.js not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** Puts the static file server into the app, where the static start command expects it. */
export async function addStaticServer(appDir: string): Promise<void> {
  const target = join(appDir, STATIC_SERVER_PATH);
  await mkdir(dirname(target), { recursive: true });
  await copyFile(staticServerSource(), target);
}
