import t from 'tap';
import { Writable } from 'node:stream';
import { progressReporter, renderProgress } from './progress';

function sink(): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _e, done) {
      text += String(chunk);
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}

t.test('the bar fills with the bytes sent', async (t) => {
  t.equal(renderProgress(0, 1024, 10), 'uploading [----------]   0%  0B/1.0K');
  t.equal(renderProgress(512, 1024, 10), 'uploading [#####-----]  50%  512B/1.0K');
  t.equal(renderProgress(1024, 1024, 10), 'uploading [##########] 100%  1.0K/1.0K');
  t.equal(renderProgress(0, 0, 4), 'uploading [####] 100%  0B/0B', 'an empty body is done at once');
  t.equal(renderProgress(5000, 1024, 4), 'uploading [####] 100%  4.9K/1.0K', 'never past full');
});

t.test('a terminal gets one redrawn line, throttled', async (t) => {
  const out = sink();
  let clock = 1000;
  const progress = progressReporter(out.stream, 100, true, () => clock);
  progress.update(10);
  progress.update(20); // within 100 ms of the last draw: skipped
  clock += 150;
  progress.update(50);
  progress.done();
  progress.done();
  const text = out.text();
  t.equal(text.split('\r').length - 1, 4, 'start, 10, 50 and the final 100%');
  t.notMatch(text, /20%/);
  t.match(text, /100%.*\n$/);
  t.equal(text.split('\n').length - 1, 1, 'one newline at the end');
});

t.test('off a terminal: plain lines, no carriage returns', async (t) => {
  const out = sink();
  const progress = progressReporter(out.stream, 2048, false);
  progress.update(1024);
  progress.done();
  t.equal(out.text(), 'uploading 2.0K\nupload done\n');
});
