// Hands out ports from the DEA's range. A port is taken when an instance of
// this DEA holds it or when something else on the machine listens there
// (checked by binding), so two DEAs sharing a range, or a stray process, do not
// end in an app failing with EADDRINUSE.

import { createServer } from 'node:net';

export type PortProbe = (port: number) => Promise<boolean>;

export class PortAllocator {
  private readonly held = new Set<number>();
  private next: number;

  constructor(
    private readonly range: { first: number; last: number },
    private readonly isFree: PortProbe,
    /**
     * Where handing out starts; random by default: DEAs sharing a range (two
     * platforms on one machine) would otherwise hand out the same ports in
     * the same order, and the bind probe cannot see a port another DEA's app
     * has not bound yet.
     */
    start = range.first + Math.floor(Math.random() * (range.last - range.first + 1)),
  ) {
    this.next = start;
  }

  get size(): number {
    return this.range.last - this.range.first + 1;
  }

  /** The next free port after the last one handed out (so a just-freed port is not reused at once), or undefined. */
  async allocate(): Promise<number | undefined> {
    for (let tried = 0; tried < this.size; tried++) {
      const port = this.next;
      this.next = port >= this.range.last ? this.range.first : port + 1;
      if (this.held.has(port)) continue;
      // Held before probing, so concurrent allocations cannot pick the same port.
      this.held.add(port);
      if (await this.isFree(port)) return port;
      this.held.delete(port);
    }
    return undefined;
  }

  /** Marks a port taken (an instance restored from a previous run). */
  hold(port: number): void {
    this.held.add(port);
  }

  release(port: number): void {
    this.held.delete(port);
  }

  isHeld(port: number): boolean {
    return this.held.has(port);
  }
}

/** True when nothing listens on host:port (we could bind it). */
export function bindProbe(host: string): PortProbe {
  return (port) =>
    new Promise((resolve) => {
      const server = createServer();
      server.unref();
      server.once('error', () => resolve(false));
      server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
    });
}
