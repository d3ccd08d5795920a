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
