// The files helper as another uid: a real `setpriv ... node -` child fed the
// compiled files.ts (dist's: this test runs the TypeScript), on a real
// directory. Needs root to change uid.

import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FILES_MAX_SLICE } from '../bus/platform';
import { helperProgram, readInstancePathAs } from './files-as-user';

const HELPER = join(__dirname, '..', 'dist', 'dea', 'files.js');
const UID = 2_099_990;

t.test('the helper program is files.ts and one call, nothing from the checkout', async (t) => {
  const program = helperProgram('/x', { path: 'a' }, HELPER);
  t.notMatch(program, /require\("\.\.?\//, 'no relative require: the uid needs no access to the DEA\'s files');
  t.match(program, /exports\.readInstancePath\("\/x", \{"path":"a"\}, 524288\)/);
});

t.test('reads as the app\'s uid', { skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'skiff-files-as-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  chmodSync(base, 0o711);
  const dir = join(base, 'instance');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  writeFileSync(join(dir, 'logs', 'stdout.log'), 'hello\n');
  writeFileSync(join(dir, 'big'), Buffer.alloc(FILES_MAX_SLICE + 10, 'x'));
  writeFileSync(join(dir, 'locked'), 'secret');
  for (const path of [dir, join(dir, 'logs'), join(dir, 'logs', 'stdout.log'), join(dir, 'big'), join(dir, 'locked')]) chownSync(path, UID, UID);
  chmodSync(dir, 0o700);
  chmodSync(join(dir, 'locked'), 0o000);
  const as = { uid: UID, gid: UID };
  const failures: string[] = [];
  const options = { helperFile: HELPER, onFailure: (d: string) => failures.push(d) };

  t.match(await readInstancePathAs(as, dir, { path: '/' }, options), { type: 'directory', entries: [{ name: 'big' }, { name: 'locked' }, { name: 'logs' }] });
  const log = await readInstancePathAs(as, dir, { path: 'logs/stdout.log', offset: -3 }, options);
  t.match(log, { type: 'file', size: 6, offset: 3 });
  const big = await readInstancePathAs(as, dir, { path: 'big' }, options);
  t.equal(Buffer.from((big as { data_base64: string }).data_base64, 'base64').length, FILES_MAX_SLICE, 'a whole slice through the pipe');
  t.match(await readInstancePathAs(as, dir, { path: 'locked' }, options), { error: 'cannot open /locked: permission denied', code: 'not_found' }, 'what its owner made unreadable');
  t.match(await readInstancePathAs(undefined, dir, { path: 'locked' }, options), { type: 'file', size: 6 }, 'root, in process, could');
  t.match(await readInstancePathAs({ uid: UID + 1, gid: UID + 1 }, dir, { path: '/' }, options), { error: /permission denied/ }, 'another uid gets nothing');
  t.match(await readInstancePathAs(as, dir, { path: '../..' }, options), { code: 'bad_path' });
  t.same(failures, [], 'no helper failed');
  t.match(await readInstancePathAs(as, dir, { path: '/' }, { ...options, helperFile: join(base, 'missing.js') }), { error: /could not be read/ });
  t.match(failures, [/files helper code unreadable/], 'a helper failure is reported to the log');
});
