import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasNodeDependencies, installNodeDependencies, requirementsListPackages } from './dependencies';
import { StagingLog } from './staging-log';

t.test('which package.json needs npm install', async (t) => {
  t.ok(hasNodeDependencies({ dependencies: { express: '^4' } }));
  t.ok(hasNodeDependencies({ optionalDependencies: { x: '1' } }));
  t.notOk(hasNodeDependencies({ dependencies: {} }));
  t.notOk(hasNodeDependencies({ devDependencies: { tap: '21' } }), 'dev dependencies are not installed');
});

t.test('which requirements.txt needs pip', async (t) => {
  t.notOk(requirementsListPackages(''));
  t.notOk(requirementsListPackages('# none yet\n   \n\t# really\n'));
  t.ok(requirementsListPackages('# web\nflask==3.0  # pinned\n'));
  t.ok(requirementsListPackages('-r other.txt\n'));
});

t.test('no npm run for an app without dependencies, or with node_modules shipped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-deps-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = new StagingLog({ publish: () => {} });
  // An empty PATH: were npm run, it would fail.
  const ctx = { appDir: dir, env: { PATH: '/nonexistent' }, timeoutMs: 5000, log };
  await installNodeDependencies(ctx, { scripts: { start: 'node .' } });
  t.equal(log.text(), '');
  mkdirSync(join(dir, 'node_modules'));
  await installNodeDependencies(ctx, { dependencies: { x: '1' } });
  t.equal(log.text(), '-----> Using the node_modules shipped with the app\n');
  rmSync(join(dir, 'node_modules'), { recursive: true });
  await t.rejects(installNodeDependencies(ctx, { dependencies: { x: '1' } }), { name: 'StagingError', message: /npm install failed \(npm: not found\)/ });
});
