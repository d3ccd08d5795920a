// Upload progress: a bar redrawn in place on a terminal, plain lines otherwise
// (logs and pipes get no carriage returns).

import { formatBytes } from './size';

/** One line: "uploading [######--------------]  30%  1.5M/5.0M". */
export function renderProgress(sent: number, total: number, barWidth = 30): string {
  const fraction = total > 0 ? Math.min(1, Math.max(0, sent / total)) : 1;
  const filled = Math.round(fraction * barWidth);
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  return `uploading [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${percent}  ${formatBytes(sent)}/${formatBytes(total)}`;
}

export interface ProgressSink {
  update(sent: number): void;
  done(): void;
}

export function progressReporter(stream: NodeJS.WriteStream, total: number, isTTY: boolean, now: () => number = Date.now): ProgressSink {
  if (!isTTY) {
    stream.write(`uploading ${formatBytes(total)}\n`);
    return { update() {}, done: () => void stream.write('upload done\n') };
  }
  let lastDraw = 0;
  let finished = false;
  const draw = (sent: number) => stream.write(`\r${renderProgress(sent, total)}`);
  draw(0);
  return {
    update(sent) {
      // Redrawing on every chunk would flood a slow terminal.
      if (finished || now() - lastDraw < 100) return;
      lastDraw = now();
      draw(sent);
    },
    done() {
      if (finished) return;
      finished = true;
      draw(total);
      stream.write('\n');
    },
  };
}
