import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
