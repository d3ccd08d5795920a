// Staging failures end to end: each is a reply with a clear `error` and the
// log so far, published on the staging log subject too, and nothing stored.

import t from 'tap';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isStagerFailure, type StagerFailure, type StagerReply } from '../bus/messages';
import { Subjects } from '../bus/subjects';
import { NO_START_COMMAND } from '../control/stager/detect';
import { eventually } from './harness';
import { makeZip, zipTree } from './stager_fixtures';
import { startStagerEnv, toolDir, type StagerEnv } from './stager_harness';

let env: StagerEnv;
t.before(async () => {
  env = await startStagerEnv(t);
});

function failure(reply: StagerReply): StagerFailure {
  if (!isStagerFailure(reply)) throw new Error(`staging succeeded, expected a failure: ${JSON.stringify(reply)}`);
  return reply;
}

t.test('no start command', async (t) => {
  const { reply, published } = await env.stage('fail-nothing', zipTree({ 'README.md': 'hello' }));
  const err = failure(reply);
  t.equal(err.error, NO_START_COMMAND);
  t.match(err.log, /Unpacked zip/);
  t.match(err.log, /Staging failed: no start command/);
  t.equal(published, err.log);
});

t.test('an archive that is corrupt or no archive at all', async (t) => {
  const zip = zipTree({ 'server.js': 'x'.repeat(5000) });
  t.match(failure((await env.stage('fail-corrupt', zip.subarray(0, 3000))).reply).error, /not a valid zip archive/);
  t.equal(failure((await env.stage('fail-text', Buffer.from('hello'))).reply).error, 'package is neither a zip nor a tar.gz archive');
});

t.test('a zip-slip entry fails the staging and writes nothing outside', async (t) => {
  const pkg = makeZip([{ name: 'server.js', data: '' }, { name: '../../../../../../tmp/skiff-zip-slip', data: 'pwned' }]);
  const err = failure((await env.stage('fail-slip', pkg)).reply);
  t.match(err.error, /skiff-zip-slip.*points outside the app directory/);
  t.notOk(existsSync('/tmp/skiff-zip-slip'));
});

t.test('a package whose sha256 is not the one asked for', async (t) => {
  const err = failure((await env.stage('fail-sha', zipTree({ 'server.js': '' }), { sha: 'ab'.repeat(32) })).reply);
  t.match(err.error, /checksum mismatch: expected sha256 abab.*, got [0-9a-f]{64}/);
});

t.test('a package that is not in the store', async (t) => {
  const reply = await env.bus.request<StagerReply>(Subjects.stager('default'), { app: 'fail-missing', bits: 'fail-missing.0000', sha: '00' }, 30_000);
  t.equal(failure(reply).error, 'app package fail-missing.0000 not found in skiff_bits');
});

t.test('a malformed request is answered, counted and logged', async (t) => {
  const before = env.service.rejections.total;
  const reply = await env.bus.request<StagerReply>(Subjects.stager('default'), { app: 'x', sha: 'y' }, 10_000);
  t.match(failure(reply), { error: 'invalid staging request: bits must be a non-empty string', log: '' });
  const notJson = await env.bus.request<StagerReply>(Subjects.stager('default'), new TextEncoder().encode('{nope'), 10_000);
  t.match(failure(notJson).error, /invalid staging request: not JSON/);
  t.equal(env.service.rejections.total, before + 2);
  await eventually(() => env.logLines.some((line) => line.includes('rejected message') && line.includes('vcap.stager.default')), 'rejection logged');
});

t.test('requirements.txt with packages and no usable pip is a clear error', async (t) => {
  // A PATH whose python3 has no pip module, as on a machine without python3-pip.
  const bin = toolDir(t);
  const python = join(bin, 'python3');
  writeFileSync(python, '#!/bin/sh\nif [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "/usr/bin/python3: No module named pip" >&2; exit 1; fi\nexit 0\n');
  chmodSync(python, 0o755);
  const noPip = await startStagerEnv(t, { settings: { commandPath: `${bin}:/usr/bin:/bin` } });
  const err = failure((await noPip.stage('fail-pip', zipTree({ 'app.py': '', 'requirements.txt': 'flask==3.0\n' }))).reply);
  t.match(err.error, /requirements\.txt lists packages but pip is not available on the stager \(python3 -m pip --version failed: \/usr\/bin\/python3: No module named pip\)/);
});

t.test('failed npm install fails the staging with its output in the log', async (t) => {
  const pkg = zipTree({
    'package.json': JSON.stringify({ scripts: { start: 'node server.js' }, dependencies: { missing: 'file:./not-there.tgz' } }),
    'server.js': '',
  });
  const err = failure((await env.stage('fail-npm', pkg)).reply);
  t.match(err.error, /^npm install failed \(exit code \d+\); see the staging log$/);
  t.match(err.log, /-----> Installing Node\.js dependencies[\s\S]*\n {7}npm (ERR!|error)/);
});

t.test('work directories are removed after each job', async (t) => {
  const jobs = join(env.workDir, 'jobs');
  mkdirSync(dirname(jobs), { recursive: true });
  await eventually(() => !existsSync(jobs) || readdirSync(jobs).length === 0, 'no job directory left', 10_000);
  t.pass();
});
