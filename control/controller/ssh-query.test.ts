import t from 'tap';
import { parseSshQuery } from './ssh-query';

const q = (text: string) => new URLSearchParams(text);

t.test('defaults: no command (a shell), no terminal, 80x24', async (t) => {
  t.same(parseSshQuery(q('')), { command: '', tty: false, cols: 80, rows: 24 });
});

t.test('a command line, a terminal and its size', async (t) => {
  t.same(parseSshQuery(q(`command=${encodeURIComponent("sh -c 'echo $PORT'")}&tty=1&cols=132&rows=43&term=xterm-256color`)), {
    command: "sh -c 'echo $PORT'", tty: true, cols: 132, rows: 43, term: 'xterm-256color',
  });
});

t.test('bad values get a 400 naming the parameter', async (t) => {
  for (const [query, pattern] of [['tty=yes', /tty/], ['cols=0', /cols/], ['rows=9999', /rows/], ['cols=8.5', /cols/], ['term=x%20y', /term/], ['command=a%00b', /NUL/]] as const) {
    t.throws(() => parseSshQuery(q(query)), { status: 400, message: pattern }, query);
  }
  t.throws(() => parseSshQuery(q(`command=${'x'.repeat(20000)}`)), { status: 400, message: /longer/ });
});

t.test('the command may come in a header, kept out of access logs', async (t) => {
  t.equal(parseSshQuery(q('command=ignored'), encodeURIComponent('echo "$SECRET" | wc -c')).command, 'echo "$SECRET" | wc -c');
  t.throws(() => parseSshQuery(q(''), '%E0%A4%A'), { status: 400, message: /percent-encoded/ });
});
