import t from 'tap';
import { parseStagerOptions } from './options';

t.test('defaults', async (t) => {
  const o = parseStagerOptions([], {});
  t.equal(o.nats, 'nats://127.0.0.1:4222');
  t.equal(o.queue, 'default');
  t.equal(o.maxJobs, 2);
  t.equal(o.commandTimeoutMs, 900_000);
  t.match(o.workDir, /skiff-stager$/);
});

t.test('flags win over the environment, which wins over defaults', async (t) => {
  const env = { NATS_URL: 'nats://a:4222', SKIFF_STAGER_QUEUE: 'fromenv', SKIFF_STAGER_MAX_JOBS: '3' };
  const o = parseStagerOptions(['--queue', 'big', '--work-dir', '/srv/stage'], env);
  t.equal(o.nats, 'nats://a:4222');
  t.equal(o.queue, 'big');
  t.equal(o.maxJobs, 3);
  t.equal(o.workDir, '/srv/stage');
  t.same(o.pinned, { maxJobs: true, commandTimeout: false }, 'given settings win over the config store');
});

t.test('bad arguments are one clear usage error', async (t) => {
  t.throws(() => parseStagerOptions(['--queue', 'a.b'], {}), { name: 'UsageError', message: /--queue must be letters/ });
  t.throws(() => parseStagerOptions(['--max-jobs', '0'], {}), { name: 'UsageError', message: /at least 1/ });
  t.throws(() => parseStagerOptions(['--max-jobs', '1.5'], {}), { name: 'UsageError', message: /whole number/ });
  t.throws(() => parseStagerOptions(['--bogus'], {}), { name: 'UsageError', message: 'unknown option --bogus' });
  t.throws(() => parseStagerOptions(['extra'], {}), { name: 'UsageError', message: /unexpected argument/ });
});

t.test('--build-uids: FIRST-LAST, from the flag or SKIFF_STAGER_BUILD_UIDS, the default range otherwise', async (t) => {
  t.same(parseStagerOptions([], {}).buildUids, { first: 2_100_000, last: 2_100_999 });
  t.same(parseStagerOptions(['--build-uids', '3000000-3000099'], { SKIFF_STAGER_BUILD_UIDS: '4000000-4000009' }).buildUids, { first: 3_000_000, last: 3_000_099 });
  t.same(parseStagerOptions([], { SKIFF_STAGER_BUILD_UIDS: '4000000-4000009' }).buildUids, { first: 4_000_000, last: 4_000_009 });
  t.throws(() => parseStagerOptions(['--build-uids', '0-10'], {}), { name: 'UsageError', message: /^--build-uids must be FIRST-LAST with 1000 <= FIRST/ });
  t.throws(() => parseStagerOptions([], { SKIFF_STAGER_BUILD_UIDS: 'many' }), { name: 'UsageError', message: /^SKIFF_STAGER_BUILD_UIDS must look like/ });
});
