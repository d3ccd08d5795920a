import t from 'tap';
import { createHash } from 'node:crypto';
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { list } from 'tar';
import { addStaticServer, buildDroplet } from './droplet';

t.test('packs droplet.json and app/ and names the droplet by its sha1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-droplet-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dropletDir = join(dir, 'droplet');
  mkdirSync(join(dropletDir, 'app'), { recursive: true });
  writeFileSync(join(dropletDir, 'app', 'index.html'), '<h1>hi</h1>');
  await addStaticServer(join(dropletDir, 'app'));
  const out = join(dir, 'droplet.tgz');
  const built = await buildDroplet(dropletDir, { runtime: 'static', framework: 'static', start_command: 'node .skiff/static-server.js' }, out);
  const bytes = readFileSync(out);
  t.equal(built.sha1, createHash('sha1').update(bytes).digest('hex'));
  t.equal(built.size, bytes.length);
  const entries: string[] = [];
  await list({ file: out, onReadEntry: (entry) => entries.push(entry.path) });
  t.same(entries.sort(), ['app/', 'app/.skiff/', 'app/.skiff/static-server.js', 'app/index.html', 'droplet.json']);
  t.same(JSON.parse(readFileSync(join(dropletDir, 'droplet.json'), 'utf8')), {
    runtime: 'static', framework: 'static', start_command: 'node .skiff/static-server.js',
  });
});

t.test('files hard-linked inside the app are packed as copies, never as hard link entries (the DEA refuses those)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-droplet-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dropletDir = join(dir, 'droplet');
  mkdirSync(join(dropletDir, 'app'), { recursive: true });
  writeFileSync(join(dropletDir, 'app', 'a.js'), 'same bytes');
  linkSync(join(dropletDir, 'app', 'a.js'), join(dropletDir, 'app', 'b.js'));
  const out = join(dir, 'droplet.tgz');
  await buildDroplet(dropletDir, { runtime: 'node', framework: 'node', start_command: 'node a.js' }, out);
  t.equal(statSync(out).mode & 0o777, 0o600, 'the droplet file is the stager\'s alone');
  const entries: Record<string, string> = {};
  await list({ file: out, onReadEntry: (entry) => (entries[entry.path] = `${entry.type} ${entry.size}`) });
  t.equal(entries['app/a.js'], 'File 10');
  t.equal(entries['app/b.js'], 'File 10');
});
