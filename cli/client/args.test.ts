import t from 'tap';
import {
  checkAppName,
  checkEmail,
  checkPositionals,
  checkUri,
  checkWholeNumber,
  normaliseTarget,
  parseCommandFlags,
  parseEnvAssignments,
  UsageError,
} from './args';

t.test('app names become host names', async (t) => {
  t.equal(checkAppName('shop-2'), 'shop-2');
  t.throws(() => checkAppName(undefined), { name: 'UsageError', message: 'missing app name' });
  t.throws(() => checkAppName('Shop'), /invalid app name "Shop"/);
  t.throws(() => checkAppName('-x'), /invalid app name/);
  t.throws(() => checkAppName('a'.repeat(64)), /at most 63/);
  t.throws(() => checkAppName('a_b'), UsageError);
});

t.test('whole numbers', async (t) => {
  t.equal(checkWholeNumber(3, '--instances', 0), 3);
  t.equal(checkWholeNumber('0', '--instances', 0), 0);
  t.throws(() => checkWholeNumber(1.5, '--instances', 0), /--instances must be a whole number from 0/);
  t.throws(() => checkWholeNumber(-1, '--instances', 0), /got -1/);
  t.throws(() => checkWholeNumber('x', '--instances', 0), /got "x"/);
  t.throws(() => checkWholeNumber(true, '--instances', 0), UsageError);
});

t.test('routes', async (t) => {
  t.equal(checkUri('Shop.LocalHost'), 'shop.localhost');
  t.equal(checkUri('shop.localhost/api/'), 'shop.localhost/api');
  t.equal(checkUri('*.apps.example.com'), '*.apps.example.com');
  t.throws(() => checkUri('http://shop.localhost'), /without http/);
  t.throws(() => checkUri('shop.localhost:8080'), /invalid route/);
  t.throws(() => checkUri('shop..localhost'), /invalid route/);
  t.throws(() => checkUri('-shop.localhost'), /invalid route/);
  t.throws(() => checkUri(''), /invalid route/);
});

t.test('env assignments', async (t) => {
  t.same(parseEnvAssignments(['A=1', 'B=x=y', 'C=']), { A: '1', B: 'x=y', C: null });
  t.throws(() => parseEnvAssignments(['A']), /expected NAME=value/);
  t.throws(() => parseEnvAssignments(['1A=2']), /invalid variable name "1A"/);
  t.throws(() => parseEnvAssignments(['=2']), /invalid variable name ""/);
});

t.test('emails', async (t) => {
  t.equal(checkEmail('a@b.c'), 'a@b.c');
  t.throws(() => checkEmail('nope'), /invalid email/);
  t.throws(() => checkEmail(undefined), /missing email/);
});

t.test('targets', async (t) => {
  t.equal(normaliseTarget('127.0.0.1:9022'), 'http://127.0.0.1:9022');
  t.equal(normaliseTarget('https://api.example.com/'), 'https://api.example.com');
  t.equal(normaliseTarget('http://Api.LocalHost:8080/skiff/'), 'http://api.localhost:8080/skiff');
  t.throws(() => normaliseTarget('ftp://x'), /only http/);
  t.throws(() => normaliseTarget('http://u:p@x'), /credentials/);
  t.throws(() => normaliseTarget('http://'), /invalid target/);
  t.throws(() => normaliseTarget('http://x/?a=1'), /no query/);
});

t.test('command flags ignore the environment and name bad flags', async (t) => {
  const specs = [{ name: 'instances', kind: 'number', help: '' }, { name: 'json', kind: 'boolean', help: '' }] as const;
  process.env.SKIFF_INSTANCES = '9';
  try {
    t.same(parseCommandFlags(['shop'], specs).values, {});
  } finally {
    delete process.env.SKIFF_INSTANCES;
  }
  t.equal(parseCommandFlags(['--instances', '2', 'shop'], specs).values.instances, 2);
  t.throws(() => parseCommandFlags(['--bogus'], specs), { name: 'UsageError', message: 'unknown option --bogus' });
  t.throws(() => checkPositionals(['a', 'b'], 1, 'skiff app N'), /unexpected argument "b" \(usage: skiff app N\)/);
});
