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
