import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { list as listTar } from 'tar';
import { listAppFiles, packApp } from './pack';

function makeApp(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'skiff-app-'));
  for (const [path, body] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), body);
  }
  return root;
}

async function tarEntries(path: string): Promise<string[]> {
  const names: string[] = [];
  await listTar({ file: path, onReadEntry: (entry) => names.push(entry.path) });
  return names.sort();
}

t.test('packs everything but .git and ignored paths; node_modules goes along', async (t) => {
  const root = makeApp({
    'server.js': 'x',
    'package.json': '{}',
    '.git/HEAD': 'ref',
    'sub/.git/config': 'x',
    'node_modules/dep/index.js': 'x',
    'logs/today.log': 'x',
    'secret.env': 'x',
    'keep.env': 'x',
    '.cfignore': 'logs/\n*.env\n',
    '.skiffignore': '!keep.env\n',
  });
  symlinkSync('server.js', join(root, 'link.js'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));

  const packed = await packApp(root);
  t.teardown(() => packed.dispose());
  t.same(await tarEntries(packed.path), [
    '.cfignore', '.skiffignore', 'keep.env', 'link.js', 'node_modules/', 'node_modules/dep/', 'node_modules/dep/index.js',
    'package.json', 'server.js', 'sub/',
  ]);
  t.equal(packed.fileCount, 7);
  t.equal(packed.sha256, createHash('sha256').update(readFileSync(packed.path)).digest('hex'));
  t.equal(packed.size, readFileSync(packed.path).length);
  packed.dispose();
  t.notOk(existsSync(packed.path), 'dispose removes the temporary package');
});

t.test('ignoring node_modules leaves it out', async (t) => {
  const root = makeApp({ 'a.js': 'x', 'node_modules/dep/index.js': 'x', '.skiffignore': 'node_modules\n' });
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  t.same(listAppFiles(root).entries, ['.skiffignore', 'a.js']);
});

t.test('an empty or missing directory is a clear error', async (t) => {
  const root = makeApp({ '.git/HEAD': 'x' });
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  await t.rejects(packApp(root), /nothing to push/);
  await t.rejects(packApp(join(root, 'missing')), /is not a directory/);
});
