// Directory listings and file slices of an instance directory, for
// `dea.<id>.files`. The directory belongs to the app's user and the DEA reads
// it as root, so nothing may lead outside it: not `..`, not an absolute path,
// not a symlink the app planted (checked on the opened file itself, so a link
// swapped in after the check is caught too). When the DEA is root, this code
// runs in a short-lived child dropped to the instance's uid (files-as-user.ts
// feeds it this module's compiled text), so it must import nothing but
// node's own modules (types excepted).

import { constants } from 'node:fs';
import { lstat, open, readdir, readlink, realpath } from 'node:fs/promises';
import { join, normalize, sep } from 'node:path';
import type { FilesReply } from '../bus/platform';

export interface SliceRequest {
  path: string;
  offset?: number;
  length?: number;
}

/** The reader (the app's uid) may not: a file its owner made unreadable, or one that is not the app's. */
function denied(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM';
}

function inside(root: string, target: string): boolean {
  return target === root || target.startsWith(root + sep);
}

/** The request path as a relative path, or undefined when it is not a plain path below the root. */
export function cleanRelativePath(path: string): string | undefined {
  if (path.includes('\0')) return undefined;
  const trimmed = path.replace(/^\/+/, '');
  if (trimmed === '') return '';
  const normal = normalize(trimmed);
  if (normal === '..' || normal.startsWith('..' + sep) || normal.startsWith(sep)) return undefined;
  return normal.replace(/\/+$/, '') === '.' ? '' : normal.replace(/\/+$/, '');
}

/** `maxSlice`: FILES_MAX_SLICE of bus/platform.ts (passed in: see above). */
export async function readInstancePath(instanceDir: string, request: SliceRequest, maxSlice: number): Promise<FilesReply> {
  const relative = cleanRelativePath(request.path);
  if (relative === undefined) return { error: `path ${JSON.stringify(request.path)} is outside the instance`, code: 'bad_path' };
  let root: string;
  try {
    root = await realpath(instanceDir);
  } catch (err) {
    return { error: denied(err) ? 'the instance directory cannot be reached as its user' : 'instance directory is gone', code: 'not_found' };
  }
  const shown = '/' + relative;
  let target: string;
  try {
    target = await realpath(join(root, relative));
  } catch (err) {
    return { error: `${denied(err) ? 'permission denied' : 'no such file or directory'}: ${shown}`, code: 'not_found' };
  }
  if (!inside(root, target)) return { error: `path ${JSON.stringify(request.path)} leads outside the instance`, code: 'bad_path' };

  const info = await lstat(target).catch(() => undefined);
  if (!info) return { error: `no such file or directory: ${shown}`, code: 'not_found' };
  if (info.isDirectory()) return listDirectory(target, shown);
  if (!info.isFile()) return { error: `not a regular file: ${shown}`, code: 'bad_path' };
  return readSlice(root, target, shown, request, maxSlice);
}

async function listDirectory(dir: string, shown: string): Promise<FilesReply> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    return { error: `cannot list ${shown}${denied(err) ? ': permission denied' : ''}`, code: 'not_found' };
  }
  const entries: Array<{ name: string; type: 'file' | 'directory'; size: number }> = [];
  for (const name of names.sort()) {
    // lstat: a symlink is listed as what it is here, never followed out of the instance.
    const info = await lstat(join(dir, name)).catch(() => undefined);
    if (!info) continue;
    entries.push({ name, type: info.isDirectory() ? 'directory' : 'file', size: info.isDirectory() ? 0 : info.size });
  }
  return { type: 'directory', path: shown, entries };
}

async function readSlice(root: string, target: string, shown: string, request: SliceRequest, maxSlice: number): Promise<FilesReply> {
  let handle;
  try {
    handle = await open(target, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    return { error: `cannot open ${shown}${denied(err) ? ': permission denied' : ''}`, code: 'not_found' };
  }
  try {
    // What was opened, not what the path names now.
    const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => undefined);
    if (opened === undefined || !inside(root, opened)) return { error: `path ${JSON.stringify(shown)} leads outside the instance`, code: 'bad_path' };
    const info = await handle.stat();
    if (!info.isFile()) return { error: `not a regular file: ${shown}`, code: 'bad_path' };
    const size = info.size;
    const wanted = request.offset ?? 0;
    const start = wanted < 0 ? Math.max(0, size + wanted) : Math.min(wanted, size);
    const cap = Math.min(maxSlice, Math.max(0, request.length ?? maxSlice));
    const length = Math.min(cap, size - start);
    const buffer = Buffer.alloc(length);
    const { bytesRead } = length > 0 ? await handle.read(buffer, 0, length, start) : { bytesRead: 0 };
    return { type: 'file', path: shown, size, offset: start, data_base64: buffer.subarray(0, bytesRead).toString('base64') };
  } finally {
    await handle.close();
  }
}
