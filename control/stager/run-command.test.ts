import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive } from '../../test/harness';
import { describeResult, runCommand } from './run-command';

const dir = mkdtempSync(join(tmpdir(), 'skiff-run-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir };

t.test('hands over stdout and stderr line by line and the exit code', async (t) => {
  const lines: string[] = [];
  const result = await runCommand(['sh', '-c', 'echo one; echo two >&2; printf "no newline"; exit 3'], {
    cwd: dir, env, timeoutMs: 10_000, onLine: (line) => lines.push(line),
  });
  t.same(lines.sort(), ['no newline', 'one', 'two']);
  t.equal(result.exitCode, 3);
  t.equal(describeResult(result, 10_000), 'exit code 3');
});

t.test('the child sees only the environment it is given', async (t) => {
  process.env.SKIFF_TEST_SECRET = 'hunter2';
  t.teardown(() => delete process.env.SKIFF_TEST_SECRET);
  const lines: string[] = [];
  await runCommand(['sh', '-c', 'env'], { cwd: dir, env: { ...env, APP_SETTING: 'x' }, timeoutMs: 10_000, onLine: (l) => lines.push(l) });
  t.ok(lines.includes('APP_SETTING=x'));
  t.ok(lines.includes(`HOME=${dir}`));
  t.notOk(lines.some((line) => line.includes('hunter2')), 'the stager environment does not leak');
});

t.test('a command over its time is killed with everything it started', async (t) => {
  const lines: string[] = [];
  const started = Date.now();
  const result = await runCommand(['sh', '-c', 'sleep 30 & echo $!; wait'], {
    cwd: dir, env, timeoutMs: 300, onLine: (l) => lines.push(l),
  });
  t.ok(result.timedOut);
  t.ok(Date.now() - started < 5000, 'returns soon after the limit');
  t.match(describeResult(result, 300), /timed out/);
  const grandchild = Number(lines[0]);
  t.ok(grandchild > 0);
  t.notOk(isAlive(grandchild), 'the background sleep went with it');
});

t.test('a missing program is reported, not thrown', async (t) => {
  const result = await runCommand(['skiff-no-such-program'], { cwd: dir, env, timeoutMs: 1000, onLine: () => {} });
  t.equal(describeResult(result, 1000), 'skiff-no-such-program: not found');
});
