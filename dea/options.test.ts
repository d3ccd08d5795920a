import t from 'tap';
import { UsageError } from '../bus/flags';
import { parseDeaOptions, parsePortRange } from './options';

t.test('defaults follow design.md', async (t) => {
  const asUser = parseDeaOptions([], { HOME: '/home/ann' }, false);
  t.equal(asUser.dataDir, '/home/ann/.skiff/data');
  t.same(asUser.portRange, { first: 61000, last: 61999 });
  t.equal(asUser.startTimeoutMs, 60_000);
  t.equal(asUser.stopGraceMs, 10_000);
  t.equal(asUser.memoryMb, undefined, 'memory left to the config store unless given');
  t.equal(asUser.host, '127.0.0.1');
  t.equal(parseDeaOptions([], {}, true).dataDir, '/var/lib/skiff');
});

t.test('flags beat environment', async (t) => {
  const env = { NATS_URL: 'nats://a:1', DEA_MEMORY: '512', DEA_PORT_RANGE: '62000-62010', DEA_INDEX: '3' };
  const fromEnv = parseDeaOptions([], env, false);
  t.equal(fromEnv.nats, 'nats://a:1');
  t.equal(fromEnv.memoryMb, 512);
  t.same(fromEnv.portRange, { first: 62000, last: 62010 });
  t.equal(fromEnv.index, 3);
  const fromFlags = parseDeaOptions(['--memory', '256', '--port-range', '100-200', '--start-timeout', '0.5'], env, false);
  t.equal(fromFlags.memoryMb, 256);
  t.same(fromFlags.portRange, { first: 100, last: 200 });
  t.equal(fromFlags.startTimeoutMs, 500);
});

t.test('bad input is one clear UsageError', async (t) => {
  t.throws(() => parseDeaOptions(['--port-range', '70000-80000'], {}, false), UsageError);
  t.throws(() => parseDeaOptions(['--port-range', 'lots'], {}, false), /--port-range must look like/);
  t.throws(() => parseDeaOptions([], { DEA_PORT_RANGE: '9-1' }, false), /DEA_PORT_RANGE/);
  t.throws(() => parseDeaOptions(['--memory', '0'], {}, false), /--memory must be at least 1/);
  t.throws(() => parseDeaOptions(['--index', '1.5'], {}, false), /--index must be a whole number/);
  t.throws(() => parseDeaOptions(['--bogus'], {}, false), /unknown option --bogus/);
  t.throws(() => parseDeaOptions(['extra'], {}, false), /unexpected argument/);
  t.same(parsePortRange(' 5 - 6 '), { first: 5, last: 6 });
});
