// Where a symlink of a tree (a staged app, a droplet) really leads: resolved
// the way the kernel resolves a path, each `..` taken after the link that
// came before it, but only through the tree's own entries, never the disk
// around it. The stager judges the tree a build left with it, the DEA the
// entries of a droplet before unpacking.

/** One entry of a tree, by its path relative to the tree's root (`a/b`). */
export type TreeEntry = 'dir' | 'file' | { symlink: string };

/** `inside`: stays in the tree; `outside`: an absolute target, or a `..` above the root; `loop`: more links than the kernel follows. */
export type LinkVerdict = 'inside' | 'outside' | 'loop';

/** Linux's MAXSYMLINKS: a path needing more links than this is ELOOP. */
const MAX_LINKS = 40;

function parts(path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.');
}

/**
 * Judges the symlink at `linkPath`. A name the tree does not hold is taken
 * literally (so `missing/../..` counts as leaving), and so is a name under a
 * file: stricter than the kernel, which would fail such a path.
 */
export function judgeSymlink(linkPath: string, lookup: (path: string) => TreeEntry | undefined): LinkVerdict {
  const resolved: string[] = [];
  const pending = parts(linkPath);
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      if (resolved.length === 0) return 'outside';
      resolved.pop();
      continue;
    }
    const entry = lookup([...resolved, part].join('/'));
    if (entry !== undefined && typeof entry === 'object') {
      if (++links > MAX_LINKS) return 'loop';
      if (entry.symlink.startsWith('/')) return 'outside';
      // Relative to the directory holding the link, which is `resolved`.
      pending.unshift(...parts(entry.symlink));
      continue;
    }
    resolved.push(part);
  }
  return 'inside';
}
