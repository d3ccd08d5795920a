import * as fs from 'node:fs';
import type { Logger } from '../../bus/log';

export interface LineWriterOptions {
  path: string;
  /** Most bytes held in memory (buffered plus being written); lines beyond are dropped and counted. */
  maxBufferBytes: number;
  /** Write as soon as this much is buffered. */
  flushBytes?: number;
  /** Otherwise write this long after the first buffered line. */
  flushIntervalMs?: number;
  log: Logger;
}

/**
 * Appends lines to a file without ever blocking the caller: lines collect in
 * memory and go out in one fs.write at a time, from the thread pool, after
 * `flushIntervalMs` or once `flushBytes` have collected. Memory is bounded: when
 * the disk stalls and `maxBufferBytes` are held, further lines are dropped and
 * counted (and logged once per stall) rather than kept. `reopen()` (SIGHUP,
 * for logrotate) switches to a freshly opened file between two writes.
 */
export class LineWriter {
  /** Lines handed to the disk. */
  linesWritten = 0;
  /** Lines dropped because the buffer was full (the disk stalled) or the file could not be written. */
  linesDropped = 0;
  writeErrors = 0;
  reopens = 0;

  private fd: number | null = null;
  private buffer: string[] = [];
  private bufferedBytes = 0;
  /** Bytes of the write in progress. */
  private writingBytes = 0;
  private writing = false;
  private timer: NodeJS.Timeout | null = null;
  private reopenWanted = false;
  private closed = false;
  private stalled = false;
  private droppedThisStall = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly flushBytes: number;
  private readonly flushIntervalMs: number;

  constructor(private readonly options: LineWriterOptions) {
    this.flushBytes = options.flushBytes ?? 64 * 1024;
    this.flushIntervalMs = options.flushIntervalMs ?? 200;
  }

  /** Opens (creates) the file for appending; fails if that is impossible, so a bad path stops the router at start. */
  async open(): Promise<void> {
    this.fd = await openForAppend(this.options.path);
  }

  /** Queues one line (newline added). Never blocks, never throws. */
  write(line: string): void {
    if (this.closed) {
      this.linesDropped++;
      return;
    }
    // A JS string's length is a lower bound of its UTF-8 size: good enough for a memory bound.
    const size = line.length + 1;
    if (this.bufferedBytes + this.writingBytes + size > this.options.maxBufferBytes) {
      this.drop(1);
      return;
    }
    this.buffer.push(line);
    this.bufferedBytes += size;
    if (this.writing) return;
    if (this.bufferedBytes >= this.flushBytes) {
      this.flush();
    } else if (this.timer === null) {
      this.timer = setTimeout(this.onTimer, this.flushIntervalMs);
      this.timer.unref();
    }
  }

  /** Reopens the file by path before the next write (logrotate moved the old one away). */
  reopen(): void {
    if (this.closed) return;
    this.reopenWanted = true;
    if (!this.writing) this.flush();
  }

  /** Bytes held in memory now. */
  get pendingBytes(): number {
    return this.bufferedBytes + this.writingBytes;
  }

  /** Writes out what is buffered, waiting at most timeoutMs for the disk, then closes the file. */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (!this.writing) this.flush();
    const idle = new Promise<void>((resolve) => {
      if (!this.writing && this.buffer.length === 0) resolve();
      else this.idleWaiters.push(resolve);
    });
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([
      idle.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.closed = true;
    if (gaveUp) {
      const lost = this.buffer.length;
      this.linesDropped += lost;
      this.buffer = [];
      this.options.log.warn('access log: disk did not take the last lines in time', { dropped: lost });
      return; // the stuck write still owns the fd; the process is ending anyway
    }
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    if (!this.writing) this.flush();
  };

  private flush(): void {
    if (this.reopenWanted) {
      void this.doReopen();
      return;
    }
    if (this.buffer.length === 0 || this.fd === null) {
      this.settle();
      return;
    }
    const data = Buffer.from(this.buffer.join('\n') + '\n');
    const lines = this.buffer.length;
    this.writingBytes = this.bufferedBytes;
    this.buffer = [];
    this.bufferedBytes = 0;
    this.writing = true;
    this.writeAll(this.fd, data, 0, lines);
  }

  private writeAll(fd: number, data: Buffer, offset: number, lines: number): void {
    fs.write(fd, data, offset, data.length - offset, null, (error, written) => {
      if (error) {
        this.writeErrors++;
        this.linesDropped += lines;
        if (this.writeErrors === 1 || this.writeErrors % 1000 === 0)
          this.options.log.error('access log write failed', { path: this.options.path, error: error.message, errors: this.writeErrors });
        this.writeDone();
        return;
      }
      if (offset + written < data.length) {
        this.writeAll(fd, data, offset + written, lines);
        return;
      }
      this.linesWritten += lines;
      this.writeDone();
    });
  }

  private writeDone(): void {
    this.writing = false;
    this.writingBytes = 0;
    if (this.stalled && this.pendingBytes < this.options.maxBufferBytes / 2) {
      this.stalled = false;
      this.options.log.warn('access log caught up', { dropped: this.droppedThisStall });
      this.droppedThisStall = 0;
    }
    if (this.reopenWanted || this.bufferedBytes >= this.flushBytes || (this.closing() && this.buffer.length > 0)) {
      this.flush();
    } else if (this.buffer.length > 0 && this.timer === null) {
      this.timer = setTimeout(this.onTimer, this.flushIntervalMs);
      this.timer.unref();
    } else {
      this.settle();
    }
  }

  private async doReopen(): Promise<void> {
    this.reopenWanted = false;
    this.writing = true;
    try {
      const fd = await openForAppend(this.options.path);
      const old = this.fd;
      this.fd = fd;
      this.reopens++;
      if (old !== null) fs.close(old, () => {});
      this.options.log.info('access log reopened', { path: this.options.path });
    } catch (error) {
      // Keep writing to the old file rather than losing lines.
      this.options.log.error('access log reopen failed, still writing to the old file', {
        path: this.options.path,
        error: (error as Error).message,
      });
    }
    this.writing = false;
    this.flush();
  }

  private closing(): boolean {
    return this.idleWaiters.length > 0;
  }

  private settle(): void {
    if (this.writing || this.buffer.length > 0) return;
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private drop(lines: number): void {
    this.linesDropped += lines;
    this.droppedThisStall += lines;
    if (!this.stalled) {
      this.stalled = true;
      this.options.log.warn('access log buffer full (disk slow or stalled), dropping lines', {
        path: this.options.path,
        buffered_bytes: this.pendingBytes,
      });
    }
  }
}

function openForAppend(path: string): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, 'a', 0o640, (error, fd) => (error ? reject(error) : resolve(fd))));
}
