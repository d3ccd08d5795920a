import t from 'tap';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags, UsageError } from './flags';
import { NATS_FLAGS, natsTarget } from './nats-options';
import type { TeardownHost } from '../test/harness';

function target(argv: string[], env: NodeJS.ProcessEnv = {}) {
  return natsTarget(parseFlags(argv, NATS_FLAGS, 'SKIFF_TEST', env), env);
}

function tempFile(t: TeardownHost, body: unknown, mode = 0o600): string {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-creds-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'dea.json');
  writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body));
  chmodSync(file, mode);
  return file;
}

t.test('credentials on the command line are refused: every process can read it', async (t) => {
  t.throws(() => target(['--nats', 'nats://dea:s3cret@127.0.0.1:4222']), UsageError);
  try {
    target(['--nats', 'nats://dea:s3cret@127.0.0.1:4222']);
  } catch (error) {
    t.match((error as Error).message, /^--nats must not carry a user, password or token \(nats:\/\/\*\*\*@127\.0\.0\.1:4222\)/);
    t.notMatch((error as Error).message, /s3cret/);
  }
  t.throws(() => target(['--nats', 'nats://tok3n@127.0.0.1:4222']), UsageError, 'a token too');
  // The environment is private to the role's user: a NATS_URL with credentials stays accepted.
  t.same(target([], { NATS_URL: 'nats://dea:s3cret@127.0.0.1:4222' }), { nats: 'nats://dea:s3cret@127.0.0.1:4222', natsAuth: undefined });
});

t.test('a credentials file gives the user, and the servers when --nats is absent', async (t) => {
  const file = tempFile(t, { servers: ['nats://127.0.0.1:5222'], user: 'dea', pass: 'pw' });
  t.same(target(['--nats-credentials', file]), { nats: 'nats://127.0.0.1:5222', natsAuth: { user: 'dea', pass: 'pw', token: undefined, origin: `--nats-credentials ${file}` } });
  t.same(target(['--nats', 'nats://10.0.0.1:4222'], { SKIFF_NATS_CREDENTIALS: file }).nats, 'nats://10.0.0.1:4222');
  t.match(target([], { SKIFF_NATS_CREDENTIALS: file }).natsAuth?.origin, /^SKIFF_NATS_CREDENTIALS/);
  t.same(target(['--nats-credentials', tempFile(t, { token: 'tk' })]).natsAuth?.token, 'tk');
});

t.test('a bad credentials file is one clear usage error, without its content', async (t) => {
  const cases: Array<[string, RegExp]> = [
    [tempFile(t, { user: 'dea', pass: 'pw' }, 0o644), /readable by other users \(mode 644\); chmod 600 it/],
    [tempFile(t, 'not json, pw'), /not JSON/],
    [tempFile(t, { user: 'dea' }), /expected \{"user","pass"\} or \{"token"\}/],
    ['/nonexistent/creds.json', /cannot read it \(ENOENT\)/],
  ];
  for (const [file, message] of cases) {
    t.throws(() => target(['--nats-credentials', file]), { name: 'UsageError', message });
    try {
      target(['--nats-credentials', file]);
    } catch (error) {
      t.notMatch((error as Error).message, /pw/);
    }
  }
});

t.test('NATS_USER and NATS_PASSWORD (or NATS_TOKEN) from the environment, consumed once read', async (t) => {
  const env: NodeJS.ProcessEnv = { NATS_USER: 'dea', NATS_PASSWORD: 'pw', OTHER: 'x' };
  t.same(target([], env).natsAuth, { user: 'dea', pass: 'pw', origin: 'NATS_USER/NATS_PASSWORD' });
  t.same(env, { OTHER: 'x' }, 'what the role starts does not inherit them');
  t.same(target([], { NATS_TOKEN: 'tk' }).natsAuth, { token: 'tk', origin: 'NATS_TOKEN' });
  t.throws(() => target([], { NATS_USER: 'dea' }), { message: 'NATS_USER is set without NATS_PASSWORD' });
  t.same(target([]), { nats: 'nats://127.0.0.1:4222', natsAuth: undefined }, 'nothing given: anonymous, as told');
});
