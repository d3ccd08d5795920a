import t from 'tap';
import { judgeSymlink, type TreeEntry } from './symlinks';

function tree(entries: Record<string, TreeEntry>): (path: string) => TreeEntry | undefined {
  return (path) => entries[path];
}

t.test('links that stay inside the tree', async (t) => {
  const lookup = tree({
    'node_modules': 'dir',
    'node_modules/.bin': 'dir',
    'node_modules/.bin/tool': { symlink: '../dep/bin/tool.js' },
    'node_modules/dep': { symlink: '../vendor/dep' },
    'vendor/dep/bin/tool.js': 'file',
    self: { symlink: '.' },
    missing: { symlink: 'not/there' },
  });
  for (const link of ['node_modules/.bin/tool', 'node_modules/dep', 'self', 'missing']) t.equal(judgeSymlink(link, lookup), 'inside', link);
});

t.test('links that leave it: absolute, by .., or through another link', async (t) => {
  const lookup = tree({
    abs: { symlink: '/var/lib/skiff/admin.json' },
    up: { symlink: '../admin.json' },
    'deep/up': { symlink: '../../x' },
    // Each link alone stays inside; together they leave, as the kernel would resolve them.
    deep: 'dir',
    'deep/a': { symlink: '..' },
    chain: { symlink: 'deep/a/../x' },
    // A name the tree lacks is taken literally.
    ghost: { symlink: 'nothing/../../x' },
    via: { symlink: 'abs' },
  });
  for (const link of ['abs', 'up', 'deep/up', 'chain', 'ghost', 'via']) t.equal(judgeSymlink(link, lookup), 'outside', link);
  t.equal(judgeSymlink('deep/a', lookup), 'inside');
});

t.test('a loop is a loop', async (t) => {
  const lookup = tree({ a: { symlink: 'b' }, b: { symlink: 'a' } });
  t.equal(judgeSymlink('a', lookup), 'loop');
});
