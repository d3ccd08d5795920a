// `skiff stager` as the process an operator (or `skiff up`) starts: flags,
// a staging job through it, and a clean exit on SIGTERM.

import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { connectBus } from '../bus/connection';
import type { StagerReply } from '../bus/messages';
import { bitsObjectName, ObjectStores } from '../bus/platform';
import { Subjects } from '../bus/subjects';
import { captureLog, eventually, isAlive, startNats } from './harness';
import { tarGzTree } from './stager_fixtures';
import { scratchDir, sha256 } from './stager_harness';

const SKIFF = resolve(__dirname, '..', 'bin', 'skiff');

t.test('a bad flag exits 2 with one line', async (t) => {
  const result = spawnSync(process.execPath, [SKIFF, 'stager', '--max-jobs', 'lots'], { encoding: 'utf8', timeout: 20_000 });
  t.equal(result.status, 2);
  t.equal(result.stderr, 'skiff stager: --max-jobs must be a number, got "lots"\n');
});

t.test('stages a job and exits 0 on SIGTERM, leaving no work directory', async (t) => {
  const nats = await startNats(t);
  const workDir = scratchDir(t);
  const child = spawn(process.execPath, [SKIFF, 'stager', '--work-dir', workDir, '--queue', 'proc'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NATS_URL: nats.url, SKIFF_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.teardown(() => {
    if (child.pid !== undefined && isAlive(child.pid)) process.kill(child.pid, 'SIGKILL');
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await eventually(() => stderr.includes('stager ready'), 'stager ready', 15_000);
  t.match(stderr, /subject=vcap\.stager\.proc/);

  const { logger } = captureLog();
  const bus = await connectBus({ servers: nats.url, name: 'process-test', logger });
  t.teardown(() => bus.close());
  const pkg = tarGzTree({ 'app.py': 'print(1)' });
  const name = bitsObjectName('proc-app', sha256(pkg));
  const bits = await bus.nats.jetstream().views.os(ObjectStores.bits);
  await bits.put({ name }, Readable.toWeb(Readable.from([pkg])) as unknown as ReadableStream<Uint8Array>);
  const reply = await bus.request<StagerReply>(Subjects.stager('proc'), { app: 'proc-app', bits: name, sha: sha256(pkg) }, 30_000);
  t.match(reply, { runtime: 'python', start_command: 'python3 app.py' });

  process.kill(child.pid!, 'SIGTERM');
  t.equal(await exited, 0);
  t.ok(existsSync(workDir));
  t.same(readdirSync(workDir), [], "the process's work directory is gone");
});
