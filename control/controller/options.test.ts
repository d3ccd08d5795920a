import t from 'tap';
import { UsageError } from '../../bus/flags';
import { parseControllerOptions } from './options';

t.test('defaults follow design.md', async (t) => {
  const o = parseControllerOptions([], {});
  t.equal(o.port, 9022);
  t.equal(o.domain, 'localhost');
  t.equal(o.maxUploadBytes, 512 * 1024 * 1024);
  t.equal(o.nats, 'nats://127.0.0.1:4222');
  t.equal(o.admin, undefined);
});

t.test('flags beat the environment; the first admin comes from the environment', async (t) => {
  const o = parseControllerOptions(['--port', '9100', '--max-upload-mb', '2'], {
    SKIFF_CONTROLLER_PORT: '9200', SKIFF_CONTROLLER_DOMAIN: 'example.com', NATS_URL: 'nats://n:4222',
    SKIFF_ADMIN_EMAIL: 'Admin@Example.com', SKIFF_ADMIN_PASSWORD: 'pw',
  });
  t.equal(o.port, 9100);
  t.equal(o.domain, 'example.com');
  t.equal(o.nats, 'nats://n:4222');
  t.equal(o.maxUploadBytes, 2 * 1024 * 1024);
  t.same(o.admin, { email: 'admin@example.com', password: 'pw' });
});

t.test('bad input is one clear error that never shows the password', async (t) => {
  t.throws(() => parseControllerOptions(['--port', 'x'], {}), UsageError);
  t.throws(() => parseControllerOptions(['--domain', 'bad domain'], {}), /--domain/);
  t.throws(() => parseControllerOptions(['extra'], {}), /unexpected argument/);
  try {
    parseControllerOptions([], { SKIFF_ADMIN_PASSWORD: 'hunter22' });
    t.fail('should throw');
  } catch (err) {
    t.match((err as Error).message, /SKIFF_ADMIN_EMAIL/);
    t.notMatch((err as Error).message, /hunter22/);
  }
});

t.test('--app-uids: the range apps get their uids from', async (t) => {
  t.same(parseControllerOptions([], {}).appUids, { first: 2_000_000, last: 2_099_999 }, 'default: DEFAULT_APP_UIDS');
  t.same(parseControllerOptions(['--app-uids', '3000000-3000009'], {}).appUids, { first: 3_000_000, last: 3_000_009 });
  t.same(parseControllerOptions([], { SKIFF_CONTROLLER_APP_UIDS: '4000-4999' }).appUids, { first: 4000, last: 4999 });
  t.throws(() => parseControllerOptions(['--app-uids', '0-10'], {}), /--app-uids must be FIRST-LAST/, 'never system uids');
  t.throws(() => parseControllerOptions([], { SKIFF_CONTROLLER_APP_UIDS: 'lots' }), /SKIFF_CONTROLLER_APP_UIDS/);
});
