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
  const env = { NATS_URL: 'nats://a:1', SKIFF_DEA_MEMORY: '512', SKIFF_DEA_PORT_RANGE: '62000-62010', SKIFF_DEA_INDEX: '3' };
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
  t.throws(() => parseDeaOptions([], { SKIFF_DEA_PORT_RANGE: '9-1' }, false), /SKIFF_DEA_PORT_RANGE/);
  t.throws(() => parseDeaOptions(['--memory', '0'], {}, false), /--memory must be at least 1/);
  t.throws(() => parseDeaOptions(['--index', '1.5'], {}, false), /--index must be a whole number/);
  t.throws(() => parseDeaOptions(['--bogus'], {}, false), /unknown option --bogus/);
  t.throws(() => parseDeaOptions(['extra'], {}, false), /unexpected argument/);
  t.same(parsePortRange(' 5 - 6 '), { first: 5, last: 6 });
});

t.test('--app-uids: the uids instances may run as', async (t) => {
  t.same(parseDeaOptions([], {}, true).appUids, { first: 2_000_000, last: 2_099_999 }, 'default: DEFAULT_APP_UIDS, as the controller\'s');
  t.same(parseDeaOptions(['--app-uids', '3000000-3000009'], {}, true).appUids, { first: 3_000_000, last: 3_000_009 });
  t.same(parseDeaOptions([], { SKIFF_DEA_APP_UIDS: '5000-5009' }, true).appUids, { first: 5000, last: 5009 });
  t.throws(() => parseDeaOptions(['--app-uids', '0-100'], {}, true), /--app-uids must be FIRST-LAST with 1000/, 'never root or system users');
  t.throws(() => parseDeaOptions([], { SKIFF_DEA_APP_UIDS: 'x' }, true), /SKIFF_DEA_APP_UIDS must look like/);
});

t.test('--service-gids: the groups bound services may give instances', async (t) => {
  t.same(parseDeaOptions([], {}, true).serviceGids, { first: 2_200_000, last: 2_299_999 }, 'default: DEFAULT_SERVICE_GIDS, the services nodes\'');
  t.same(parseDeaOptions(['--service-gids', '2200000-2200009'], {}, true).serviceGids, { first: 2_200_000, last: 2_200_009 });
  t.same(parseDeaOptions([], { SKIFF_DEA_SERVICE_GIDS: '7000-7009' }, true).serviceGids, { first: 7000, last: 7009 });
  t.throws(() => parseDeaOptions(['--service-gids', '0-10'], {}, true), /--service-gids must be FIRST-LAST with 1000/, 'never root\'s or a system group');
  t.throws(() => parseDeaOptions([], { SKIFF_DEA_SERVICE_GIDS: 'staff' }, true), /SKIFF_DEA_SERVICE_GIDS must look like/);
});
