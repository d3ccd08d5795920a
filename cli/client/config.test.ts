import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TeardownHost } from '../../test/harness';
import { configPath, readConfig, skiffHome, writeConfig } from './config';

function tempHome(t: TeardownHost): string {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-home-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('SKIFF_HOME or ~/.skiff', async (t) => {
  t.equal(skiffHome({ SKIFF_HOME: '/x' }), '/x');
  t.match(skiffHome({}), /\.skiff$/);
});

t.test('round trip, mode 0600, fresh directories 0700', async (t) => {
  const home = join(tempHome(t), 'nested');
  t.same(readConfig(home), {}, 'no file: empty config');
  writeConfig({ target: 'http://127.0.0.1:9022', token: 'secret' }, home);
  t.same(readConfig(home), { target: 'http://127.0.0.1:9022', token: 'secret' });
  t.equal(statSync(configPath(home)).mode & 0o777, 0o600);
  t.equal(statSync(home).mode & 0o777, 0o700);
  writeConfig({ target: 'http://other' }, home);
  t.same(JSON.parse(readFileSync(configPath(home), 'utf8')), { target: 'http://other' }, 'logout drops the token from the file');
});

t.test('a broken file gets a message naming it', async (t) => {
  const home = tempHome(t);
  writeFileSync(configPath(home), '{nope');
  t.throws(() => readConfig(home), /config.json is not valid JSON/);
  writeFileSync(configPath(home), '[1]');
  t.throws(() => readConfig(home), /must hold a JSON object/);
  writeFileSync(configPath(home), '{"target":5,"token":"t"}');
  t.same(readConfig(home), { token: 't' }, 'wrong-typed fields are dropped');
});
