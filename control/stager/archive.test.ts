import t from 'tap';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appRootOf, detectArchiveFormat, safeEntryPath, unpackPackage } from './archive';
import { makeTarGz, makeZip, tarGzTree, zipTree, type FixtureEntry } from '../../test/stager_fixtures';

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-archive-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function unpack(bytes: Buffer, limits?: { maxBytes: number; maxEntries: number }) {
  const dir = scratch();
  const file = join(dir, 'package');
  writeFileSync(file, bytes);
  const dest = join(dir, 'out');
  const result = await unpackPackage(file, dest, limits);
  return { dest, result, dir };
}

const formats: Array<[string, (entries: FixtureEntry[]) => Buffer]> = [
  ['zip', makeZip],
  ['tar.gz', makeTarGz],
];

t.test('detects zip, tar.gz and plain tar from the bytes', async (t) => {
  t.equal(detectArchiveFormat(zipTree({ a: 'x' })), 'zip');
  t.equal(detectArchiveFormat(tarGzTree({ a: 'x' })), 'tar.gz');
  const plainTar = Buffer.alloc(512);
  plainTar.write('ustar', 257, 'latin1');
  t.equal(detectArchiveFormat(plainTar), 'tar');
  t.equal(detectArchiveFormat(Buffer.from('hello world')), undefined);
});

t.test('entry names that leave the directory are refused', async (t) => {
  t.equal(safeEntryPath('./a/./b/'), 'a/b');
  t.equal(safeEntryPath('./'), '');
  t.throws(() => safeEntryPath('../evil'), /points outside/);
  t.throws(() => safeEntryPath('a/../../evil'), /points outside/);
  t.throws(() => safeEntryPath('/etc/passwd'), /absolute path/);
  t.throws(() => safeEntryPath('C:\\x'), /absolute path/);
});

for (const [format, make] of formats) {
  t.test(`${format}: unpacks files, directories and modes`, async (t) => {
    const { dest, result } = await unpack(make([
      { name: 'dir/', directory: true },
      { name: 'dir/a.txt', data: 'hello' },
      { name: 'run.sh', data: '#!/bin/sh\necho hi\n', mode: 0o4755 },
      { name: 'link', symlink: 'dir/a.txt' },
    ]));
    t.equal(result.format, format);
    t.equal(readFileSync(join(dest, 'dir/a.txt'), 'utf8'), 'hello');
    t.equal(statSync(join(dest, 'run.sh')).mode & 0o7777, 0o755, 'executable kept, setuid dropped');
    t.equal(statSync(join(dest, 'dir/a.txt')).mode & 0o7777, 0o644);
    t.equal(readlinkSync(join(dest, 'link')), 'dir/a.txt');
    t.equal(readFileSync(join(dest, 'link'), 'utf8'), 'hello');
  });

  t.test(`${format}: an entry with .. is refused and nothing lands outside`, async (t) => {
    const dir = scratch();
    const file = join(dir, 'package');
    writeFileSync(file, make([{ name: 'ok.txt', data: 'ok' }, { name: '../evil.txt', data: 'pwned' }]));
    await t.rejects(unpackPackage(file, join(dir, 'out')), { name: 'PackageError', message: /evil\.txt.*points outside the app directory/ });
    t.notOk(existsSync(join(dir, 'evil.txt')));
  });

  t.test(`${format}: an absolute entry path is refused`, async (t) => {
    await t.rejects(unpack(make([{ name: '/tmp/skiff-absolute-evil', data: 'x' }])), /absolute path/);
    t.notOk(existsSync('/tmp/skiff-absolute-evil'));
  });

  t.test(`${format}: symlinks pointing outside are refused`, async (t) => {
    await t.rejects(unpack(make([{ name: 'etc', symlink: '/etc' }])), /symlink to an absolute path/);
    await t.rejects(unpack(make([{ name: 'up', symlink: '../..' }])), /symlink pointing outside/);
    // `d` -> `.` is harmless alone, but makes `d/x -> ../y` land one level up.
    await t.rejects(unpack(make([
      { name: 'd', symlink: '.' },
      { name: 'd/x', symlink: '../y' },
    ])), /outside the app directory/);
  });

  t.test(`${format}: the unpacked size and the entry count are capped`, async (t) => {
    const big = Buffer.alloc(4096, 'a');
    await t.rejects(unpack(make([{ name: 'a', data: big }, { name: 'b', data: big }]), { maxBytes: 6000, maxEntries: 10 }),
      /larger than .* MiB unpacked/);
    const many = Array.from({ length: 6 }, (_, i) => ({ name: `f${i}`, data: 'x' }));
    await t.rejects(unpack(make(many), { maxBytes: 1e6, maxEntries: 5 }), /more than 5 entries/);
  });
}

t.test('tar hard links are copied when they name a file of the archive', async (t) => {
  const { dest } = await unpack(makeTarGz([{ name: 'a', data: 'A' }, { name: 'b', hardlink: 'a' }]));
  t.equal(readFileSync(join(dest, 'b'), 'utf8'), 'A');
  await t.rejects(unpack(makeTarGz([{ name: 'b', hardlink: '../../etc/passwd' }])), /points outside/);
});

t.test('bytes that are no archive, or a broken one, give a clear error', async (t) => {
  await t.rejects(unpack(Buffer.from('just some text, not an archive')), { name: 'PackageError', message: 'package is neither a zip nor a tar.gz archive' });
  const zip = zipTree({ 'a.txt': 'hello' });
  await t.rejects(unpack(zip.subarray(0, zip.length - 10)), /not a valid zip archive/);
  const tgz = tarGzTree({ 'a.bin': randomBytes(20_000) });
  await t.rejects(unpack(tgz.subarray(0, tgz.length / 2)), { name: 'PackageError', message: /not a valid tar\.gz archive/ });
});

t.test('macOS resource forks are left out', async (t) => {
  const { dest } = await unpack(makeZip([
    { name: 'site/index.html', data: '<h1>hi</h1>' },
    { name: '__MACOSX/site/._index.html', data: 'junk' },
  ]));
  t.same(readdirSync(dest), ['site']);
  t.equal(await appRootOf(dest), join(dest, 'site'), 'a single top-level folder is the app');
});

t.test('a package with several top-level entries is the app itself', async (t) => {
  const { dest } = await unpack(zipTree({ 'a/x': '1', 'b.txt': '2' }));
  t.equal(await appRootOf(dest), dest);
});
