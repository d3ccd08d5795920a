import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FILES_MAX_SLICE } from '../bus/platform';
import { cleanRelativePath, readInstancePath as readWithCap } from './files';

const readInstancePath = (instanceDir: string, request: { path: string; offset?: number; length?: number }) => readWithCap(instanceDir, request, FILES_MAX_SLICE);

const base = mkdtempSync(join(tmpdir(), 'skiff-files-'));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
const dir = join(base, 'instance');
mkdirSync(join(dir, 'logs'), { recursive: true });
mkdirSync(join(dir, 'app'));
writeFileSync(join(dir, 'logs', 'stdout.log'), '0123456789');
writeFileSync(join(dir, 'big'), Buffer.alloc(FILES_MAX_SLICE + 10, 'x'));
writeFileSync(join(base, 'secret'), 'outside');
symlinkSync(join(base, 'secret'), join(dir, 'app', 'leak'));
symlinkSync(base, join(dir, 'app', 'up'));
symlinkSync('../logs/stdout.log', join(dir, 'app', 'inner'));

const text = (reply: unknown) => Buffer.from((reply as { data_base64: string }).data_base64, 'base64').toString();

t.test('cleanRelativePath', async (t) => {
  t.equal(cleanRelativePath('/'), '');
  t.equal(cleanRelativePath(''), '');
  t.equal(cleanRelativePath('/logs/'), 'logs');
  t.equal(cleanRelativePath('app/./x/../y'), 'app/y');
  t.equal(cleanRelativePath('../etc'), undefined);
  t.equal(cleanRelativePath('/app/../../etc/passwd'), undefined);
  t.equal(cleanRelativePath('a\0b'), undefined);
});

t.test('listings and slices', async (t) => {
  const root = await readInstancePath(dir, { path: '/' });
  t.match(root, { type: 'directory', path: '/' });
  t.same((root as { entries: unknown[] }).entries, [
    { name: 'app', type: 'directory', size: 0 },
    { name: 'big', type: 'file', size: FILES_MAX_SLICE + 10 },
    { name: 'logs', type: 'directory', size: 0 },
  ]);
  const whole = await readInstancePath(dir, { path: 'logs/stdout.log' });
  t.match(whole, { type: 'file', size: 10, offset: 0 });
  t.equal(text(whole), '0123456789');
  t.equal(text(await readInstancePath(dir, { path: 'logs/stdout.log', offset: 3, length: 4 })), '3456');
  const tail = await readInstancePath(dir, { path: 'logs/stdout.log', offset: -3 });
  t.match(tail, { offset: 7 });
  t.equal(text(tail), '789');
  t.equal(text(await readInstancePath(dir, { path: 'logs/stdout.log', offset: -50 })), '0123456789', 'tail longer than the file');
  t.equal(text(await readInstancePath(dir, { path: 'logs/stdout.log', offset: 50 })), '', 'past the end');
  const big = await readInstancePath(dir, { path: 'big', length: 10 * FILES_MAX_SLICE });
  t.equal(Buffer.from((big as { data_base64: string }).data_base64, 'base64').length, FILES_MAX_SLICE, 'capped slice');
  t.equal(text(await readInstancePath(dir, { path: 'app/inner' })), '0123456789', 'a link inside the instance is fine');
});

t.test('nothing outside the instance', async (t) => {
  t.match(await readInstancePath(dir, { path: '../secret' }), { code: 'bad_path' });
  t.match(await readInstancePath(dir, { path: 'app/leak' }), { code: 'bad_path' });
  t.match(await readInstancePath(dir, { path: 'app/up' }), { code: 'bad_path' });
  t.match(await readInstancePath(dir, { path: 'app/up/secret' }), { code: 'bad_path' });
  t.match(await readInstancePath(dir, { path: 'nope' }), { code: 'not_found' });
  t.match(await readInstancePath(join(base, 'gone'), { path: '/' }), { code: 'not_found' });
  const listing = await readInstancePath(dir, { path: 'app' });
  t.same((listing as { entries: Array<{ name: string }> }).entries.map((e) => e.name), ['inner', 'leak', 'up']);
  t.notMatch(JSON.stringify(listing), /outside/, 'links are listed, not followed');
});
