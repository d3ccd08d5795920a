import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminEmailFor, adminFile, loadOrCreateAdmin, loadOrCreateStatusCredentials } from './up-admin';

function dataDir(t: tap.Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-up-admin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('created once, 0600, then reused', async (t) => {
  const dir = dataDir(t);
  const first = loadOrCreateAdmin(dir, 'localhost');
  t.equal(first.created, true);
  t.equal(first.email, 'admin@skiff.local');
  t.ok(first.password.length >= 20, 'a long random password');
  t.equal(statSync(adminFile(dir)).mode & 0o777, 0o600);
  const second = loadOrCreateAdmin(dir, 'example.com');
  t.same(second, { email: first.email, password: first.password, created: false }, 'a later start keeps the first admin');
  t.not(loadOrCreateAdmin(dataDir(t), 'localhost').password, first.password, 'each platform its own password');
});

t.test('email from the domain', async (t) => {
  t.equal(adminEmailFor('apps.Example.com'), 'admin@apps.example.com');
  t.equal(adminEmailFor('localhost'), 'admin@skiff.local');
});

t.test('a damaged file is an error, not a silent new admin', async (t) => {
  const dir = dataDir(t);
  writeFileSync(adminFile(dir), '{oops');
  t.throws(() => loadOrCreateAdmin(dir, 'localhost'), /admin.json is not valid JSON/);
  writeFileSync(adminFile(dir), '{"email":"a@b.c"}');
  t.throws(() => loadOrCreateAdmin(dir, 'localhost'), /must hold \{"email","password"\}/);
  t.equal(readFileSync(adminFile(dir), 'utf8'), '{"email":"a@b.c"}', 'left as it was');
});

t.test('router status credentials: created once, 0600, then reused', async (t) => {
  const dir = dataDir(t);
  const first = loadOrCreateStatusCredentials(dir);
  t.equal(first.user, 'router-status');
  t.ok(first.password.length >= 20);
  t.equal(statSync(join(dir, 'router-status.json')).mode & 0o777, 0o600);
  t.same(loadOrCreateStatusCredentials(dir), first);
});
