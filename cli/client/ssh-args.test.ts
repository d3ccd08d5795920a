import { spawnSync } from 'node:child_process';
import t from 'tap';
import { remoteCommand, shellQuote, wantTerminal } from './ssh-args';

t.test('one argument is a command line as it is', async (t) => {
  t.equal(remoteCommand(['echo $PORT; pwd']), 'echo $PORT; pwd');
  t.equal(remoteCommand([]), '', 'none: an interactive shell');
});

t.test('several arguments stay the words they were', async (t) => {
  const words = ['sh', '-c', "echo $PORT; echo 'it''s' \"x\"; exit 3", '', 'a\nb'];
  const line = remoteCommand(words);
  t.equal(line.split(' ')[0], 'sh');
  // The remote shell splits the line back into exactly these words.
  const back = spawnSync('/bin/sh', ['-c', `for w in ${line.replace(/^sh /, '')}; do printf '[%s]' "$w"; done`], { encoding: 'utf8' });
  t.equal(back.stdout, words.slice(1).map((w) => `[${w}]`).join(''));
});

t.test('plain words are not quoted', async (t) => {
  t.equal(shellQuote('ls'), 'ls');
  t.equal(shellQuote('/tmp/a-b_c.txt'), '/tmp/a-b_c.txt');
  t.equal(shellQuote('$HOME'), "'$HOME'");
  t.equal(shellQuote(''), "''");
});

t.test('a terminal when both ends are one, or when told', async (t) => {
  t.equal(wantTerminal({}, true, true), true);
  t.equal(wantTerminal({}, true, false), false, 'output to a file or pipe stays byte-exact');
  t.equal(wantTerminal({}, false, true), false);
  t.equal(wantTerminal({ tty: true }, false, false), true);
  t.equal(wantTerminal({ 'no-tty': true }, true, true), false);
  t.throws(() => wantTerminal({ tty: true, 'no-tty': true }, true, true), /not both/);
});
