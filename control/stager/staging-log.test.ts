import t from 'tap';
import { StagingLog } from './staging-log';

t.test('publishes each line as it comes and keeps them all for the reply', async (t) => {
  const published: string[] = [];
  const log = new StagingLog({ publish: (text) => published.push(text) });
  log.step('Detected Node.js app');
  log.output('added 1 package');
  t.same(published, ['-----> Detected Node.js app\n', '       added 1 package\n']);
  t.equal(log.text(), published.join(''));
});

t.test('a huge log keeps its beginning and end within the cap', async (t) => {
  const log = new StagingLog({ publish: () => {}, maxKept: 1000 });
  log.step('first');
  for (let i = 0; i < 1000; i++) log.output(`line ${i}`);
  log.step('last');
  const text = log.text();
  t.ok(text.length <= 1100, `${text.length} characters`);
  t.match(text, /^-----> first\n/);
  t.match(text, /\[\.\.\. \d+ lines left out \.\.\.\]\n/);
  t.match(text, /-----> last\n$/);
});

t.test('a publisher that throws does not lose the line', async (t) => {
  const log = new StagingLog({ publish: () => { throw new Error('closed'); } });
  log.step('still here');
  t.equal(log.text(), '-----> still here\n');
});

t.test('colour codes and control characters are taken out', async (t) => {
  const published: string[] = [];
  const log = new StagingLog({ publish: (text) => published.push(text) });
  log.output('\u001b[31mnpm ERR!\u001b[0m bad\u0007\ttab');
  t.same(published, ['       npm ERR! bad\ttab\n']);
});
