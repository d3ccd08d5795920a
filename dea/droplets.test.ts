// unpackDroplet checks a droplet, whatever the stager did: hand-made
// tarballs with what a droplet may not hold are refused before anything of
// them is written.

import t from 'tap';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TeardownHost } from '../test/harness';
import { makeTarGz, type FixtureEntry } from '../test/stager_fixtures';
import { DropletError, unpackDroplet } from './droplets';

const INFO: FixtureEntry = { name: 'droplet.json', data: JSON.stringify({ runtime: 'node', framework: 'node', start_command: 'npm start' }) };

/** A scratch dir with the droplet file and an empty instance directory, as the DEA has them. */
function setUp(t: TeardownHost, entries: FixtureEntry[]): { tarball: string; dir: string } {
  const scratch = mkdtempSync(join(tmpdir(), 'skiff-droplet-unpack-'));
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
  const tarball = join(scratch, 'droplet.tgz');
  writeFileSync(tarball, makeTarGz(entries));
  const dir = join(scratch, 'instance');
  mkdirSync(dir);
  return { tarball, dir };
}

t.test('a droplet with files, directories and symlinks inside unpacks', async (t) => {
  const { tarball, dir } = setUp(t, [
    INFO,
    { name: 'app/', directory: true },
    { name: 'app/server.js', data: 'ok' },
    { name: 'app/vendor/dep/index.js', data: '' },
    { name: 'app/node_modules/dep', symlink: '../vendor/dep' },
    // Inside the instance directory, if outside app/: the app's own logs.
    { name: 'app/logs', symlink: '../logs' },
    { name: 'app/dangling', symlink: 'not-there' },
  ]);
  t.same(await unpackDroplet(tarball, dir), { runtime: 'node', framework: 'node', start_command: 'npm start' });
  t.equal(readFileSync(join(dir, 'app/server.js'), 'utf8'), 'ok');
  t.equal(readlinkSync(join(dir, 'app/node_modules/dep')), '../vendor/dep');
});

const REFUSED: Array<{ what: string; entries: FixtureEntry[]; message: string }> = [
  {
    what: 'an absolute symlink',
    entries: [{ name: 'app/x', symlink: '/var/lib/skiff/admin.json' }],
    message: 'droplet entry "app/x" is a symlink leading outside the instance directory (-> /var/lib/skiff/admin.json)',
  },
  {
    what: 'a symlink up and out',
    entries: [{ name: 'app/x', symlink: '../../other-instance' }],
    message: 'droplet entry "app/x" is a symlink leading outside the instance directory (-> ../../other-instance)',
  },
  {
    what: 'two symlinks that leave only together',
    entries: [{ name: 'app/deep/', directory: true }, { name: 'app/deep/a', symlink: '../..' }, { name: 'app/c', symlink: 'deep/a/../other-instance' }],
    message: 'droplet entry "app/c" is a symlink leading outside the instance directory (-> deep/a/../other-instance)',
  },
  {
    what: 'a symlink loop',
    entries: [{ name: 'app/a', symlink: 'b' }, { name: 'app/b', symlink: 'a' }],
    message: 'droplet entry "app/a" is a symlink loop (-> b)',
  },
  {
    what: 'a hard link',
    entries: [{ name: 'app/server.js', data: '' }, { name: 'app/copy.js', hardlink: 'app/server.js' }],
    message: 'droplet entry "app/copy.js" is a hard link, which a droplet cannot hold',
  },
  {
    what: 'a character device',
    entries: [{ name: 'app/null', special: 'CharacterDevice' }],
    message: 'droplet entry "app/null" is a character device, which a droplet cannot hold',
  },
  {
    what: 'a block device',
    entries: [{ name: 'app/disk', special: 'BlockDevice' }],
    message: 'droplet entry "app/disk" is a block device, which a droplet cannot hold',
  },
  {
    what: 'a fifo',
    entries: [{ name: 'app/pipe', special: 'FIFO' }],
    message: 'droplet entry "app/pipe" is a fifo, which a droplet cannot hold',
  },
  {
    what: 'a path out of the instance directory',
    entries: [{ name: 'app/../../escape.js', data: '' }],
    message: 'droplet entry "app/../../escape.js" points outside the instance directory',
  },
];

for (const { what, entries, message } of REFUSED) {
  t.test(`${what} is refused, and nothing is written`, async (t) => {
    const { tarball, dir } = setUp(t, [INFO, { name: 'app/', directory: true }, { name: 'app/server.js', data: '' }, ...entries]);
    const error = await unpackDroplet(tarball, dir).then(() => undefined, (err: unknown) => err);
    t.ok(error instanceof DropletError, 'a DropletError');
    t.equal((error as Error).message, message);
    t.same(readdirSync(dir), [], 'the instance directory is still empty');
  });
}

t.test('a droplet that is no tarball is a DropletError', async (t) => {
  const { tarball, dir } = setUp(t, [INFO]);
  writeFileSync(tarball, 'not a droplet');
  await t.rejects(unpackDroplet(tarball, dir), { name: 'DropletError' });
  t.ok(lstatSync(dir).isDirectory());
});
