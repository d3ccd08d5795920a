// Package fixtures for stager tests: zip and tar.gz archives built in memory,
// including ones no well-behaved archiver would write (entries with `..`,
// absolute paths, symlinks out), which is the point.

import { createHash } from 'node:crypto';
import { gzipSync, crc32 } from 'node:zlib';
import { Header } from 'tar';

export interface FixtureEntry {
  name: string;
  /** File contents; absent for directories and links. */
  data?: string | Buffer;
  /** Unix permission bits; default 0o644 (files), 0o755 (directories). */
  mode?: number;
  /** Makes the entry a symlink to this target. */
  symlink?: string;
  /** tar only: a hard link to this archive path. */
  hardlink?: string;
  directory?: boolean;
  /** tar only: an entry no app should hold. */
  special?: 'CharacterDevice' | 'BlockDevice' | 'FIFO';
}

/** A tree of files as `{path: contents}`; directories are implied. */
export type FileTree = Record<string, string | Buffer>;

export function treeEntries(tree: FileTree, prefix = ''): FixtureEntry[] {
  return Object.entries(tree).map(([name, data]) => ({ name: prefix + name, data }));
}

/** A zip with stored (uncompressed) entries and Unix attributes, as Info-ZIP writes them. */
export function makeZip(entries: FixtureEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.directory && !entry.name.endsWith('/') ? entry.name + '/' : entry.name, 'utf8');
    const data = entry.symlink !== undefined ? Buffer.from(entry.symlink) : Buffer.from(entry.data ?? '');
    const type = entry.symlink !== undefined ? 0o120000 : entry.directory ? 0o040000 : 0o100000;
    const mode = type | (entry.mode ?? (entry.directory || entry.symlink !== undefined ? 0o755 : 0o644));
    const crc = crc32(data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // names are UTF-8
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((mode << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += local.length + name.length + data.length;
  }
  const centralDir = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralDir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, centralDir, end]);
}

/** A gzipped ustar archive, entries written exactly as named. */
export function makeTarGz(entries: FixtureEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = Buffer.from(entry.data ?? '');
    const type = entry.special ?? (entry.symlink !== undefined ? 'SymbolicLink' : entry.hardlink !== undefined ? 'Link' : entry.directory ? 'Directory' : 'File');
    const header = new Header({
      path: entry.name,
      mode: entry.mode ?? (entry.directory ? 0o755 : 0o644),
      size: type === 'File' ? data.length : 0,
      mtime: new Date(1_700_000_000_000),
      type,
      linkpath: entry.symlink ?? entry.hardlink,
      uid: 0,
      gid: 0,
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block);
    if (type === 'File' && data.length > 0) {
      blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

export function zipTree(tree: FileTree, prefix = ''): Buffer {
  return makeZip(treeEntries(tree, prefix));
}

export function tarGzTree(tree: FileTree, prefix = ''): Buffer {
  return makeTarGz(treeEntries(tree, prefix));
}

/**
 * A minimal pure-Python wheel holding one module, so that a test can have pip
 * install a requirement from a local file, without an index or the network.
 */
export function makeWheel(name: string, version: string, moduleSource: string): { fileName: string; data: Buffer } {
  const distInfo = `${name}-${version}.dist-info`;
  const files: Array<[string, string]> = [
    [`${name}.py`, moduleSource],
    [`${distInfo}/METADATA`, `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n`],
    [`${distInfo}/WHEEL`, 'Wheel-Version: 1.0\nGenerator: skiff-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n'],
  ];
  const digest = (data: string) => createHash('sha256').update(data).digest('base64url');
  const record = files.map(([path, data]) => `${path},sha256=${digest(data)},${Buffer.byteLength(data)}`).join('\n') + `\n${distInfo}/RECORD,,\n`;
  files.push([`${distInfo}/RECORD`, record]);
  return { fileName: `${name}-${version}-py3-none-any.whl`, data: makeZip(files.map(([path, data]) => ({ name: path, data }))) };
}
