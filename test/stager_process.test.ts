// `skiff stager` as the process an operator (or `skiff up`) starts: flags,
// a staging job through it, and a clean exit on SIGTERM.

import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { connectBus } from '../bus/connection';
import { isStagerFailure, type StagerReply } from '../bus/messages';
import { bitsObjectName, ObjectStores, stagingLogSubject } from '../bus/platform';
import { Subjects } from '../bus/subjects';
import { captureLog, eventually, isAlive, startNats, type TeardownHost } from './harness';
import { tarGzTree } from './stager_fixtures';
import { scratchDir, sha256, toolDir, workDirFor } from './stager_harness';

const SKIFF = resolve(__dirname, '..', 'bin', 'skiff');

t.test('a bad flag exits 2 with one line', async (t) => {
  const result = spawnSync(process.execPath, [SKIFF, 'stager', '--max-jobs', 'lots'], { encoding: 'utf8', timeout: 20_000 });
  t.equal(result.status, 2);
  t.equal(result.stderr, 'skiff stager: --max-jobs must be a number, got "lots"\n');
});

/** `asUid`: the stager runs as that unprivileged uid (through setpriv), not as this test's user. */
async function startStagerProcess(t: TeardownHost, natsUrl: string, workDir: string, path = process.env.PATH ?? '/usr/bin:/bin', asUid?: number) {
  const argv = [process.execPath, SKIFF, 'stager', '--work-dir', workDir, '--queue', 'proc'];
  const [command, ...args] = asUid === undefined ? argv : ['setpriv', `--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups', '--', ...argv];
  const child = spawn(command!, args, {
    env: { PATH: path, NATS_URL: natsUrl, SKIFF_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.teardown(() => {
    if (child.pid !== undefined && isAlive(child.pid)) process.kill(child.pid, 'SIGKILL');
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await eventually(() => stderr.includes('stager ready'), 'stager ready', 15_000);
  return { child, exited, stderr: () => stderr };
}

async function putPackage(t: TeardownHost, natsUrl: string, app: string, pkg: Buffer) {
  const { logger } = captureLog();
  const bus = await connectBus({ servers: natsUrl, name: 'process-test', logger });
  t.teardown(() => bus.close());
  const name = bitsObjectName(app, sha256(pkg));
  const bits = await bus.nats.jetstream().views.os(ObjectStores.bits);
  await bits.put({ name }, Readable.toWeb(Readable.from([pkg])) as unknown as ReadableStream<Uint8Array>);
  return { bus, request: { app, bits: name, sha: sha256(pkg) } };
}

t.test('stages a job and exits 0 on SIGTERM, leaving no work directory', async (t) => {
  const nats = await startNats(t);
  const workDir = workDirFor(t);
  const { child, exited, stderr } = await startStagerProcess(t, nats.url, workDir);
  t.match(stderr(), /subject=vcap\.stager\.proc/);
  if (process.getuid?.() === 0) t.notMatch(stderr(), /not running as root/, 'as root, no warning');
  const { bus, request } = await putPackage(t, nats.url, 'proc-app', tarGzTree({ 'app.py': 'print(1)' }));
  const reply = await bus.request<StagerReply>(Subjects.stager('proc'), request, 30_000);
  t.match(reply, { runtime: 'python', start_command: 'python3 app.py' });

  process.kill(child.pid!, 'SIGTERM');
  t.equal(await exited, 0);
  t.ok(existsSync(workDir));
  t.same(readdirSync(workDir), [], "the process's work directory is gone");
});

t.test('SIGTERM cancels a running job, which replies, and the stager exits 0', async (t) => {
  const nats = await startNats(t);
  const workDir = workDirFor(t);
  // A python3 whose pip check hangs, as a stuck staging command would.
  const bin = toolDir(t);
  writeFileSync(join(bin, 'python3'), '#!/bin/sh\nsleep 60\n');
  chmodSync(join(bin, 'python3'), 0o755);
  const { child, exited, stderr } = await startStagerProcess(t, nats.url, workDir, `${bin}:/usr/bin:/bin`);
  const { bus, request } = await putPackage(t, nats.url, 'stuck-app', tarGzTree({ 'app.py': '', 'requirements.txt': 'flask\n' }));
  let log = '';
  bus.subscribe(stagingLogSubject('stuck-app'), (msg) => (log += new TextDecoder().decode(msg.data)));
  await bus.flush();
  const reply = bus.request<StagerReply>(Subjects.stager('proc'), request, 30_000);
  await eventually(() => log.includes('Start command: python3 app.py'), 'the job reached its dependencies', 10_000);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const stopped = Date.now();
  process.kill(child.pid!, 'SIGTERM');
  t.match(await reply, { error: 'staging cancelled: the stager is stopping; push again' });
  t.equal(await exited, 0);
  t.ok(Date.now() - stopped < 10_000, 'no wait for the stuck command');
  t.match(stderr(), /stopping/);
});

const isRoot = process.getuid?.() === 0;

t.test('as root, a --work-dir build uids cannot pass through is refused at start: one line, exit 1', { skip: !isRoot && 'needs root' }, async (t) => {
  const closed = scratchDir(t); // 0700, root's
  const workDir = join(closed, 'stage');
  const result = spawnSync(process.execPath, [SKIFF, 'stager', '--work-dir', workDir, '--build-uids', '2100000-2100999'], {
    encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH, NATS_URL: 'nats://127.0.0.1:1' },
  });
  t.equal(result.status, 1);
  t.match(result.stderr, new RegExp(`^skiff stager: build uids \\(2100000-2100999\\) cannot reach ${workDir}/stager-\\w+: every parent directory must be searchable by other users \\(chmod o\\+x on each\\), or choose --work-dir elsewhere\n$`));
  t.same(readdirSync(workDir), [], 'its own directory is removed');
});

t.test('not root: one warning at start, and build steps run as the stager\'s own user', { skip: !isRoot && 'needs root to start a stager as another user' }, async (t) => {
  const nats = await startNats(t);
  // A uid outside the app and build ranges stands for the operator's unprivileged stager user.
  const uid = 2_199_000 + Math.floor(Math.random() * 1000);
  const workDir = workDirFor(t);
  chownSync(workDir, uid, uid);
  const { child, exited, stderr } = await startStagerProcess(t, nats.url, workDir, '/usr/local/bin:/usr/bin:/bin', uid);
  const warnings = stderr().split('\n').filter((line) => line.includes('not running as root'));
  t.equal(warnings.length, 1, 'said once');
  t.match(warnings[0], new RegExp(`build steps \\(npm install scripts, pip install\\) run as this stager's own user \\(uid ${uid}\\) and can read and change whatever it can`));

  const pkg = tarGzTree({
    'package.json': JSON.stringify({ name: 'who', version: '1.0.0', scripts: { start: 'node server.js', postinstall: 'node -e "console.log(\'BUILD uid=\' + process.getuid())"' }, dependencies: { localdep: 'file:./vendor/localdep' } }),
    'server.js': '',
    'vendor/localdep/package.json': JSON.stringify({ name: 'localdep', version: '1.0.0' }),
  });
  const { bus, request } = await putPackage(t, nats.url, 'who-app', pkg);
  const reply = await bus.request<StagerReply>(Subjects.stager('proc'), { ...request, manifest: { command: null, env: { npm_config_foreground_scripts: 'true' } } }, 60_000);
  t.notOk(isStagerFailure(reply), 'staged');
  t.match(reply.log, new RegExp(`BUILD uid=${uid}\\n`), 'the build ran as the stager\'s user');
  process.kill(child.pid!, 'SIGTERM');
  t.equal(await exited, 0);
});
