// Unpacks an uploaded app package (zip or tar/tar.gz, told apart by its
// bytes) into a directory, refusing anything that would write outside it.
// Users' archives are untrusted: entry names with `..` or an absolute path,
// symlinks that resolve outside the directory, and archives that expand past
// the size or file-count caps are errors that name the offending entry, never
// silently skipped, so a package either unpacks whole or not at all.

import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, lstat, mkdir, open, readdir, realpath, rename, rm, symlink, utimes } from 'node:fs/promises';
import { dirname, isAbsolute, join, posix, relative, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Parser, type ReadEntry } from 'tar';
import * as yauzl from 'yauzl';
import { StagingError } from './errors';

export type ArchiveFormat = 'zip' | 'tar.gz' | 'tar';

export interface UnpackLimits {
  /** Sum of the sizes of all files once unpacked. */
  maxBytes: number;
  /** Entries of any kind (files, directories, links). */
  maxEntries: number;
}

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = { maxBytes: 1024 * 1024 * 1024, maxEntries: 100_000 };

/** A package that cannot be unpacked; the message is meant for the user who pushed it. */
export class PackageError extends StagingError {
  override name = 'PackageError';
}

/** Tells the format from the first bytes; undefined when it is neither. */
export function detectArchiveFormat(head: Uint8Array): ArchiveFormat | undefined {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  // Local file header, or the end-of-central-directory record of an empty zip.
  if (b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && ((b[2] === 3 && b[3] === 4) || (b[2] === 5 && b[3] === 6))) return 'zip';
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'tar.gz';
  if (b.length >= 262 && b.toString('latin1', 257, 262) === 'ustar') return 'tar';
  return undefined;
}

/**
 * The path of an entry relative to the archive root, '' for the root itself.
 * Throws for names that could land outside it.
 */
export function safeEntryPath(name: string): string {
  if (name.includes('\0')) throw new PackageError(`package entry ${JSON.stringify(name)} has a NUL byte in its name`);
  if (name.startsWith('/') || /^[A-Za-z]:[\\/]/.test(name) || name.startsWith('\\')) {
    throw new PackageError(`package entry ${JSON.stringify(name)} has an absolute path`);
  }
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new PackageError(`package entry ${JSON.stringify(name)} points outside the app directory`);
  return parts.join('/');
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

// Resource forks macOS's Finder adds to every zip it makes; never part of an app.
function isMacJunk(path: string): boolean {
  return path === '__MACOSX' || path.startsWith('__MACOSX/');
}

interface PendingLink {
  path: string;
  target: string;
  hard: boolean;
}

/**
 * Writes entries under `root`. Regular files and directories come first;
 * links are made only once every file is in place, so no file is ever
 * written through a link the archive created.
 */
class SafeWriter {
  private bytes = 0;
  private entries = 0;
  private readonly links: PendingLink[] = [];

  constructor(
    private readonly root: string,
    private readonly limits: UnpackLimits,
  ) {}

  private count(name: string): void {
    if (++this.entries > this.limits.maxEntries) {
      throw new PackageError(`package has more than ${this.limits.maxEntries} entries (at ${JSON.stringify(name)})`);
    }
  }

  /** Directories are 0755 whatever the archive says: the app's instance user must be able to enter them. */
  async directory(name: string): Promise<void> {
    const path = safeEntryPath(name);
    if (path === '' || isMacJunk(path)) return;
    this.count(name);
    await this.mkdirs(join(this.root, path), name, 0o755);
  }

  /** Streams one file; counts its bytes as they arrive so a lying header cannot get past the cap. */
  async file(name: string, mode: number | undefined, data: Readable, mtime?: Date): Promise<void> {
    const path = safeEntryPath(name);
    if (path === '' || isMacJunk(path)) {
      data.resume();
      return;
    }
    this.count(name);
    const target = join(this.root, path);
    await this.mkdirs(dirname(target), name);
    const limit = this.limits.maxBytes;
    const counter = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        this.bytes += chunk.length;
        if (this.bytes > limit) done(new PackageError(`package is larger than ${formatMiB(limit)} unpacked (at ${JSON.stringify(name)})`));
        else done(null, chunk);
      },
    });
    // 'w' would follow a symlink, but none exists yet (links come last); a
    // directory of the same name fails with EISDIR.
    await pipeline(data, counter, createWriteStream(target, { mode: fileMode(mode) })).catch((err: unknown) => {
      throw asPackageError(err, name);
    });
    // The user's times, not the staging time: the static server's Last-Modified depends on them.
    if (mtime && !Number.isNaN(mtime.getTime())) await utimes(target, mtime, mtime);
  }

  link(name: string, target: string, hard: boolean): void {
    const path = safeEntryPath(name);
    if (path === '' || isMacJunk(path)) return;
    this.count(name);
    if (target === '') throw new PackageError(`package entry ${JSON.stringify(name)} is a link without a target`);
    this.links.push({ path, target, hard });
  }

  async finish(): Promise<void> {
    const realRoot = await realpath(this.root);
    for (const link of this.links) {
      const where = join(this.root, link.path);
      await this.mkdirs(dirname(where), link.path);
      // Links in the archive may already have made a parent a link: judge from where the link really lands.
      const realParent = await realpath(dirname(where));
      if (!inside(realRoot, realParent)) throw new PackageError(`package entry ${JSON.stringify(link.path)} points outside the app directory`);
      if (link.hard) {
        // A hard link names another entry of the archive, relative to the archive root.
        const source = join(this.root, safeEntryPath(link.target));
        const stat = await lstat(source).catch(() => undefined);
        if (!stat?.isFile()) throw new PackageError(`package entry ${JSON.stringify(link.path)} is a hard link to a missing file`);
        await copyFile(source, join(realParent, posix.basename(link.path)));
        continue;
      }
      if (isAbsolute(link.target)) throw new PackageError(`package entry ${JSON.stringify(link.path)} is a symlink to an absolute path`);
      if (!inside(realRoot, join(realParent, link.target))) {
        throw new PackageError(`package entry ${JSON.stringify(link.path)} is a symlink pointing outside the app directory`);
      }
      const made = join(realParent, posix.basename(link.path));
      await symlink(link.target, made).catch((err: unknown) => {
        throw asPackageError(err, link.path);
      });
    }
    // The lexical check above cannot see `a/..` through a link made later;
    // the kernel's own resolution can.
    for (const link of this.links) {
      if (link.hard) continue;
      const resolved = await realpath(join(this.root, link.path)).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined; // dangling, but inside by the check above
        if (err.code === 'ELOOP') throw new PackageError(`package entry ${JSON.stringify(link.path)} is a symlink loop`);
        throw err;
      });
      if (resolved !== undefined && !inside(realRoot, resolved)) {
        throw new PackageError(`package entry ${JSON.stringify(link.path)} is a symlink pointing outside the app directory`);
      }
    }
  }

  get unpackedBytes(): number {
    return this.bytes;
  }

  get entryCount(): number {
    return this.entries;
  }

  private async mkdirs(path: string, name: string, mode?: number): Promise<void> {
    await mkdir(path, { recursive: true, mode }).catch((err: unknown) => {
      throw asPackageError(err, name);
    });
  }
}

function asPackageError(err: unknown, name: string): Error {
  if (err instanceof PackageError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') {
    return new PackageError(`package entry ${JSON.stringify(name)} clashes with another entry of the same name`);
  }
  return err instanceof Error ? err : new Error(String(err));
}

// Executable bits are kept (scripts must stay runnable); setuid, setgid,
// sticky and write access for others are not.
function fileMode(mode: number | undefined): number {
  if (mode === undefined || mode === 0) return 0o644;
  return (mode & 0o111 ? 0o755 : 0o644) & ~0o022;
}

function formatMiB(bytes: number): string {
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`;
}

export interface UnpackResult {
  format: ArchiveFormat;
  files: number;
  bytes: number;
}

/** Unpacks the package at `file` into the empty directory `dest`. */
export async function unpackPackage(file: string, dest: string, limits: UnpackLimits = DEFAULT_UNPACK_LIMITS): Promise<UnpackResult> {
  const head = Buffer.alloc(512);
  const handle = await open(file, 'r');
  let headLength: number;
  try {
    headLength = (await handle.read(head, 0, head.length, 0)).bytesRead;
  } finally {
    await handle.close();
  }
  const format = detectArchiveFormat(head.subarray(0, headLength));
  if (format === undefined) throw new PackageError('package is neither a zip nor a tar.gz archive');
  await mkdir(dest, { recursive: true });
  const writer = new SafeWriter(dest, limits);
  if (format === 'zip') await readZip(file, writer);
  else await readTar(file, writer);
  await writer.finish();
  return { format, files: writer.entryCount, bytes: writer.unpackedBytes };
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;

function readZip(file: string, writer: SafeWriter): Promise<void> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: true, validateEntrySizes: true, decodeStrings: true }, (openError, zip) => {
      if (openError || !zip) {
        reject(zipError(openError));
        return;
      }
      let failed = false;
      const fail = (err: unknown) => {
        if (failed) return;
        failed = true;
        zip.close();
        reject(err instanceof PackageError ? err : zipError(err));
      };
      zip.on('error', fail);
      zip.on('end', () => {
        if (!failed) resolve();
      });
      zip.on('entry', (entry: yauzl.Entry) => {
        void handleZipEntry(zip, entry, writer).then(() => {
          if (!failed) zip.readEntry();
        }, fail);
      });
      zip.readEntry();
    });
  });
}

async function handleZipEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, writer: SafeWriter): Promise<void> {
  const unixMode = entry.externalFileAttributes >>> 16;
  const name = entry.fileName;
  if (name.endsWith('/') || (unixMode & S_IFMT) === S_IFDIR) {
    await writer.directory(name);
    return;
  }
  if (entry.isEncrypted()) throw new PackageError(`package entry ${JSON.stringify(name)} is encrypted`);
  const stream = await new Promise<Readable>((resolve, reject) => {
    zip.openReadStream(entry, (err, s) => (err || !s ? reject(err ?? new Error('no stream')) : resolve(s)));
  });
  if ((unixMode & S_IFMT) === S_IFLNK) {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > 4096) throw new PackageError(`package entry ${JSON.stringify(name)} is a symlink with an overlong target`);
      chunks.push(chunk);
    }
    writer.link(name, Buffer.concat(chunks).toString('utf8'), false);
    return;
  }
  await writer.file(name, unixMode & 0o7777, stream, entry.getLastModDate());
}

// yauzl words its errors for programmers ("invalid relative path: ../x"); say which entry and why.
function zipError(err: unknown): PackageError {
  const message = err instanceof Error ? err.message : String(err);
  const relativePath = /invalid relative path: (.*)$/.exec(message);
  if (relativePath) return new PackageError(`package entry ${JSON.stringify(relativePath[1])} points outside the app directory`);
  const absolutePath = /absolute path: (.*)$/.exec(message);
  if (absolutePath) return new PackageError(`package entry ${JSON.stringify(absolutePath[1])} has an absolute path`);
  return new PackageError(`package is not a valid zip archive: ${message}`);
}

function readTar(file: string, writer: SafeWriter): Promise<void> {
  return new Promise((resolve, reject) => {
    let failed = false;
    const writes = new Set<Promise<void>>();
    const source = createReadStream(file);
    // Entries arrive one at a time: the parser holds the next one back until
    // this one's stream has ended, and pauses the file while we write.
    const parser = new Parser({
      strict: true,
      noResume: true,
      onReadEntry: (entry: ReadEntry) => {
        // The parser moves on once the entry's data is read, which can be
        // before the file is on disk: the end waits for every write.
        const write = handleTarEntry(entry, writer).catch(fail);
        writes.add(write);
        void write.then(() => writes.delete(write));
      },
    });
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      source.destroy();
      parser.abort(err instanceof Error ? err : new Error(String(err)));
      reject(err instanceof PackageError ? err : new PackageError(`package is not a valid tar.gz archive: ${(err as Error).message ?? String(err)}`));
    };
    parser.on('error', fail);
    parser.on('warn', (code: string, message: string | Error) => {
      if (code !== 'TAR_ENTRY_INFO') fail(message instanceof Error ? message : new Error(message));
    });
    parser.on('end', () => {
      void Promise.all(writes).then(() => {
        if (!failed) resolve();
      });
    });
    source.on('error', fail);
    source.pipe(parser as unknown as NodeJS.WritableStream);
  });
}

async function handleTarEntry(entry: ReadEntry, writer: SafeWriter): Promise<void> {
  switch (entry.type) {
    case 'Directory':
    case 'GNUDumpDir':
      entry.resume();
      await writer.directory(entry.path);
      return;
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      await writer.file(entry.path, entry.mode, entry as unknown as Readable, entry.mtime);
      return;
    case 'SymbolicLink':
      entry.resume();
      writer.link(entry.path, entry.linkpath ?? '', false);
      return;
    case 'Link':
      entry.resume();
      writer.link(entry.path, entry.linkpath ?? '', true);
      return;
    default:
      entry.resume();
      throw new PackageError(`package entry ${JSON.stringify(entry.path)} is a ${entry.type}, which an app cannot hold`);
  }
}

/**
 * Users zip the folder, not its contents: when the unpacked tree is a single
 * directory, the app is that directory. Returns the app's path.
 */
export async function appRootOf(dir: string): Promise<string> {
  const entries = await readdir(dir, { withFileTypes: true });
  if (entries.length === 1 && entries[0]!.isDirectory()) return join(dir, entries[0]!.name);
  return dir;
}

/** Moves the app root to `dest` (same file system: the work directory). */
export async function moveApp(from: string, dest: string): Promise<void> {
  await rm(dest, { recursive: true, force: true });
  await mkdir(dirname(dest), { recursive: true });
  await rename(from, dest);
}
