// The staging log of one job: each line is published at once (the controller
// streams it to `skiff push`), and kept for the reply. The reply must fit in
// a NATS message (1 MB by default), so a very long log keeps its beginning
// and its end, where the detection result and the error are.

export interface StagingLogOptions {
  /** Called with each line, newline included; the publisher. */
  publish: (text: string) => void;
  /** Most characters kept for the reply; default 256 KiB. */
  maxKept?: number;
}

const ANSI_ESCAPE = /\u001b\[[0-9;?]*[ -\/]*[@-~]/g;
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

export class StagingLog {
  private readonly head: string[] = [];
  private headSize = 0;
  private tail: string[] = [];
  private tailSize = 0;
  private dropped = 0;
  private readonly maxKept: number;

  constructor(private readonly opts: StagingLogOptions) {
    this.maxKept = opts.maxKept ?? 256 * 1024;
  }

  /** A step of the stager's own: "-----> Installing dependencies". */
  step(text: string): void {
    this.line(`-----> ${text}`);
  }

  /** Output of a command the stager runs, indented under its step. */
  output(text: string): void {
    this.line(`       ${text}`);
  }

  line(text: string): void {
    // Colour codes and control characters from commands would garble the
    // CLI's terminal and swell the JSON reply (six bytes each once escaped).
    const line = text.replace(/\n+$/, '').replace(ANSI_ESCAPE, '').replace(CONTROL, '') + '\n';
    try {
      this.opts.publish(line);
    } catch {
      // A lost connection must not fail the staging: the reply still carries the log.
    }
    const half = this.maxKept / 2;
    if (this.headSize + line.length <= half && this.dropped === 0 && this.tail.length === 0) {
      this.head.push(line);
      this.headSize += line.length;
      return;
    }
    this.tail.push(line);
    this.tailSize += line.length;
    while (this.tailSize > half && this.tail.length > 0) {
      this.tailSize -= this.tail.shift()!.length;
      this.dropped++;
    }
  }

  text(): string {
    const gap = this.dropped > 0 ? `[... ${this.dropped} lines left out ...]\n` : '';
    return this.head.join('') + gap + this.tail.join('');
  }
}
