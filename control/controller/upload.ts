// Receiving an app package: streamed to a temporary file while it is hashed
// and counted, so a 512 MiB upload never sits in memory.

import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HttpError, type Exchange } from './http';

export type PackageFormat = 'zip' | 'tar.gz';

/** Detected from the first bytes, never from Content-Type (which clients get wrong). */
export function packageFormat(head: Buffer): PackageFormat | undefined {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 0x03 || head[2] === 0x05) && (head[3] === 0x04 || head[3] === 0x06)) {
    return 'zip';
  }
  if (head.length >= 3 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) return 'tar.gz';
  return undefined;
}

export interface ReceivedPackage {
  path: string;
  sha256: string;
  size: number;
  format: PackageFormat;
  /** Removes the temporary file. */
  discard(): Promise<void>;
}

/**
 * Reads the request body into `dir`. Throws HttpError 413 past `limit`
 * (at once when Content-Length says so), 415 for neither zip nor tar.gz,
 * 400 for an empty body or a sha256 that does not match `X-Skiff-Sha256`.
 */
export async function receivePackage(exchange: Exchange, dir: string, limit: number): Promise<ReceivedPackage> {
  const tooLarge = () => new HttpError(413, `the package is larger than the limit of ${Math.round(limit / 1024 / 1024)} MiB`);
  const declared = exchange.contentLength();
  if (declared !== undefined && declared > limit) throw tooLarge();
  const expectedSha = exchange.headers['x-skiff-sha256']?.trim().toLowerCase();
  if (expectedSha !== undefined && !/^[0-9a-f]{64}$/.test(expectedSha)) throw new HttpError(400, 'X-Skiff-Sha256 must be 64 hex digits');

  const path = join(dir, `upload-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const file = await open(path, 'wx', 0o600);
  const discard = () => rm(path, { force: true });
  const hash = createHash('sha256');
  let size = 0;
  let head = Buffer.alloc(0);
  try {
    for (let chunk = await exchange.nextChunk(); chunk !== null; chunk = await exchange.nextChunk()) {
      size += chunk.length;
      if (size > limit) throw tooLarge();
      if (head.length < 4) head = Buffer.concat([head, chunk.subarray(0, 4 - head.length)]);
      hash.update(chunk);
      await file.write(chunk);
    }
    if (exchange.isAborted) throw new HttpError(400, 'upload aborted');
    if (size === 0) throw new HttpError(400, 'the package is empty: send a zip or tar.gz of the app');
    const format = packageFormat(head);
    if (format === undefined) throw new HttpError(415, 'the package is neither a zip nor a tar.gz');
    const sha256 = hash.digest('hex');
    if (expectedSha !== undefined && expectedSha !== sha256) {
      throw new HttpError(400, `sha256 mismatch: the package received hashes to ${sha256}, X-Skiff-Sha256 says ${expectedSha}`);
    }
    return { path, sha256, size, format, discard };
  } catch (err) {
    await discard();
    throw err;
  } finally {
    await file.close();
  }
}
