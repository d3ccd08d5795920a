import t from 'tap';
import { IgnoreRules } from './ignore';

t.test('unanchored names match at any depth', async (t) => {
  const rules = new IgnoreRules('*.log\nnode_modules\n# a comment\n\n');
  t.ok(rules.ignores('debug.log', false));
  t.ok(rules.ignores('logs/app/debug.log', false));
  t.ok(rules.ignores('node_modules', true));
  t.ok(rules.ignores('lib/node_modules', true));
  t.notOk(rules.ignores('debug.log.txt', false));
  t.notOk(rules.ignores('# a comment', false));
  t.notOk(rules.ignores('server.js', false));
});

t.test('a slash anchors to the root; a trailing slash means directories only', async (t) => {
  const rules = new IgnoreRules('/build\ndocs/internal\ntmp/');
  t.ok(rules.ignores('build', true));
  t.notOk(rules.ignores('src/build', true));
  t.ok(rules.ignores('docs/internal', true));
  t.notOk(rules.ignores('x/docs/internal', true));
  t.ok(rules.ignores('tmp', true));
  t.ok(rules.ignores('a/tmp', true));
  t.notOk(rules.ignores('tmp', false), 'a file named tmp stays');
});

t.test('negation: the last matching pattern wins', async (t) => {
  const rules = new IgnoreRules('*.env\n!example.env');
  t.ok(rules.ignores('prod.env', false));
  t.notOk(rules.ignores('example.env', false));
  t.notOk(rules.ignores('config/example.env', false));
  const again = new IgnoreRules('*.env\n!example.env\nexample.env');
  t.ok(again.ignores('example.env', false));
});

t.test('double stars, wildcards and classes', async (t) => {
  const rules = new IgnoreRules('**/cache\nsrc/**/*.map\nassets/**\nfile?.txt\n[Tt]humbs.db\nv[!0-9].txt');
  t.ok(rules.ignores('cache', true));
  t.ok(rules.ignores('a/b/cache', true));
  t.ok(rules.ignores('src/app.js.map', false));
  t.ok(rules.ignores('src/deep/er/app.js.map', false));
  t.notOk(rules.ignores('lib/app.js.map', false));
  t.ok(rules.ignores('assets/img/logo.png', false));
  t.notOk(rules.ignores('assets', true), 'assets/** matches what is inside, not the directory');
  t.ok(rules.ignores('file1.txt', false));
  t.notOk(rules.ignores('file10.txt', false));
  t.ok(rules.ignores('Thumbs.db', false));
  t.ok(rules.ignores('thumbs.db', false));
  t.ok(rules.ignores('vx.txt', false));
  t.notOk(rules.ignores('v1.txt', false));
  t.notOk(rules.ignores('a/b', false), '? and * never cross a slash');
});

t.test('escapes and odd input', async (t) => {
  const rules = new IgnoreRules('\\#notes\n\\!important\nspace\\ \n[unclosed\na.b');
  t.ok(rules.ignores('#notes', false));
  t.ok(rules.ignores('!important', false));
  t.ok(rules.ignores('space ', false));
  t.ok(rules.ignores('[unclosed', false));
  t.ok(rules.ignores('a.b', false));
  t.notOk(rules.ignores('axb', false), 'a dot is literal');
  t.notOk(new IgnoreRules('!\n/\n').ignores('x', false), 'empty patterns match nothing');
});

t.test('CRLF files and several sources', async (t) => {
  const rules = new IgnoreRules('*.tmp\r\n', '!keep.tmp\r\n');
  t.ok(rules.ignores('x.tmp', false));
  t.notOk(rules.ignores('keep.tmp', false));
});
