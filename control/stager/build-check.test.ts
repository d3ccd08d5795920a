import t from 'tap';
import { spawnSync } from 'node:child_process';
import { lchownSync, linkSync, mkdirSync, readdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TeardownHost } from '../../test/harness';
import { checkBuiltApp } from './build-check';

const me = process.getuid!();
const isRoot = me === 0;

/** A job directory holding `app/` with a clean build in it: files, a directory, symlinks inside, an inner hard link. */
function jobWithApp(t: TeardownHost): { job: string; app: string } {
  const job = mkdtempSync(join(tmpdir(), 'skiff-build-check-'));
  t.teardown(() => rmSync(job, { recursive: true, force: true }));
  const app = join(job, 'app');
  mkdirSync(join(app, 'node_modules/.bin'), { recursive: true });
  mkdirSync(join(app, 'vendor/dep/bin'), { recursive: true });
  writeFileSync(join(app, 'vendor/dep/bin/tool.js'), '');
  symlinkSync('../vendor/dep', join(app, 'node_modules/dep'));
  symlinkSync('../dep/bin/tool.js', join(app, 'node_modules/.bin/tool'));
  symlinkSync('not-there-yet', join(app, 'dangling'));
  writeFileSync(join(app, 'server.js'), '');
  linkSync(join(app, 'server.js'), join(app, 'server-copy.js'));
  return { job, app };
}

t.test('a clean build passes: symlinks inside, dangling ones, hard links within the app', async (t) => {
  const { app } = jobWithApp(t);
  await checkBuiltApp(app, me);
  t.pass();
});

t.test('a symlink out is refused, absolute, by .., or through another link', async (t) => {
  const cases: Array<{ links: Array<[string, string]>; shown: string }> = [
    { links: [['leak', '/var/lib/skiff/admin.json']], shown: 'app/leak -> /var/lib/skiff/admin.json' },
    { links: [['vendor/up', '../../home']], shown: 'app/vendor/up -> ../../home' },
    // Each alone stays inside; together they reach the job directory.
    { links: [['vendor/dep/root', '../..'], ['sneaky', 'vendor/dep/root/../droplet.tgz']], shown: 'app/sneaky -> vendor/dep/root/../droplet.tgz' },
  ];
  for (const { links, shown } of cases) {
    const { app } = jobWithApp(t);
    for (const [name, target] of links) symlinkSync(target, join(app, name));
    await t.rejects(checkBuiltApp(app, me), { name: 'StagingError', message: `the build left a symlink that leads outside the app: ${shown}` }, shown);
  }
});

t.test('a symlink loop is refused', async (t) => {
  const { app } = jobWithApp(t);
  symlinkSync('b', join(app, 'a'));
  symlinkSync('a', join(app, 'b'));
  await t.rejects(checkBuiltApp(app, me), { message: /^the build left a symlink loop: app\/a -> b$/ });
});

t.test('a fifo or a socket is refused', async (t) => {
  const { app } = jobWithApp(t);
  t.equal(spawnSync('mkfifo', [join(app, 'vendor/pipe')]).status, 0);
  await t.rejects(checkBuiltApp(app, me), { message: 'the build left a fifo, which a droplet cannot hold: app/vendor/pipe' });

  const second = jobWithApp(t).app;
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(join(second, 'sock'), resolve));
  t.teardown(() => server.close());
  await t.rejects(checkBuiltApp(second, me), { message: 'the build left a socket, which a droplet cannot hold: app/sock' });
});

t.test('a device file is refused', { skip: !isRoot && 'mknod needs root' }, async (t) => {
  const { app } = jobWithApp(t);
  const made = spawnSync('mknod', [join(app, 'null'), 'c', '1', '3']);
  if (made.status !== 0) {
    t.comment(`mknod failed here, nothing to check: ${made.stderr}`);
    return;
  }
  await t.rejects(checkBuiltApp(app, me), { message: 'the build left a character device, which a droplet cannot hold: app/null' });
});

t.test('a hard link to a file outside the app is refused', async (t) => {
  const { job, app } = jobWithApp(t);
  writeFileSync(join(job, 'secret'), 'platform secret');
  linkSync(join(job, 'secret'), join(app, 'vendor/secret'));
  await t.rejects(checkBuiltApp(app, me), { message: 'the build left a hard link to a file outside the app: app/vendor/secret' });
});

t.test("an entry not owned by the build's uid is refused", { skip: !isRoot && 'chown needs root' }, async (t) => {
  const { app } = jobWithApp(t);
  writeFileSync(join(app, 'root-file.js'), '');
  // The tree as a build uid's, but for one file of root's, as a hard link to a root file would be.
  const other = 2_100_777;
  const give = (dir: string) => {
    lchownSync(dir, other, other);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'root-file.js') continue;
      if (entry.isDirectory()) give(join(dir, entry.name));
      else lchownSync(join(dir, entry.name), other, other);
    }
  };
  give(app);
  await t.rejects(checkBuiltApp(app, other), { message: 'the build left a file it does not own: app/root-file.js (owner uid 0, the build ran as 2100777)' });
  lchownSync(join(app, 'root-file.js'), other, other);
  await checkBuiltApp(app, other);
  t.pass('all its own: passes');
});
