import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inotifyWarning, readInotifyLimits } from './host-checks';

t.test('the decision: below either minimum warns with the sysctl line for what is low', async (t) => {
  t.equal(inotifyWarning({ max_user_instances: 4096, max_user_watches: 524288 }), undefined, 'the seed values are enough');
  t.equal(inotifyWarning({ max_user_instances: 8192, max_user_watches: 1048576 }), undefined, 'more is fine');
  t.equal(inotifyWarning({ max_user_instances: undefined, max_user_watches: undefined }), undefined, 'unknown: nothing to say');
  t.equal(
    inotifyWarning({ max_user_instances: 128, max_user_watches: 524288 }),
    'fs.inotify.max_user_instances is 128 (want 4096 or more): apps that watch files may fail with ENOSPC or EMFILE; ' +
      "raise it with `sysctl -w fs.inotify.max_user_instances=4096` and keep it across reboots with " +
      "`printf '%s\\n' fs.inotify.max_user_instances=4096 > /etc/sysctl.d/60-skiff-inotify.conf`",
  );
  const both = inotifyWarning({ max_user_instances: 128, max_user_watches: 8192 })!;
  t.match(both, /max_user_instances is 128 .*max_user_watches is 8192/);
  t.match(both, /`sysctl -w fs\.inotify\.max_user_instances=4096 fs\.inotify\.max_user_watches=524288`/);
});

t.test('the values are read from /proc/sys/fs/inotify', async (t) => {
  const real = readInotifyLimits();
  const proc = (name: string) => Number(readFileSync(`/proc/sys/fs/inotify/${name}`, 'utf8'));
  t.equal(real.max_user_instances, proc('max_user_instances'));
  t.equal(real.max_user_watches, proc('max_user_watches'));
  t.comment(`this host: ${JSON.stringify(real)}: ${inotifyWarning(real) ?? 'no warning'}`);

  const dir = mkdtempSync(join(tmpdir(), 'skiff-inotify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'max_user_instances'), '8192\n');
  t.same(readInotifyLimits(dir), { max_user_instances: 8192, max_user_watches: undefined }, 'a missing file is unknown, not zero');
});
