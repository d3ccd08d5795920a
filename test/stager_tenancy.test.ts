// Staging runs the app's build steps (here an npm postinstall script, real
// npm, no registry) as an unprivileged build uid: it cannot read, list or
// write the platform's data dir, the stager's directories or environment;
// nothing it starts outlives the build; and the tree it leaves is checked,
// not trusted. Needs root, as a stager that isolates builds does (CI runs as root).

import t from 'tap';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isStagerFailure, type StagerFailure, type StagerReply, type StagerSuccess } from '../bus/messages';
import { DEFAULT_BUILD_UIDS, inRange } from '../bus/uids';
import { pidsOf } from '../control/stager/build-user';
import { isAlive, sleep } from './harness';
import { tarGzTree } from './stager_fixtures';
import { scratchDir, startStagerEnv, type StagerEnv } from './stager_harness';

const skip = process.getuid?.() !== 0 && 'builds run as their own uid only when the stager is root (CI runs as root)';

// What a hostile postinstall tries: each attempt prints "HOSTILE <what>: ALLOWED ..." or "HOSTILE <what>: refused <code>".
const HOSTILE = `
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const say = (text) => console.log('HOSTILE ' + text);
const attempt = (what, fn) => {
  try {
    say(what + ': ALLOWED ' + JSON.stringify(fn()));
  } catch (error) {
    say(what + ': refused ' + error.code);
  }
};
say('uid=' + process.getuid() + ' gid=' + process.getgid() + ' groups=' + process.getgroups().join(','));
attempt('read the secret', () => fs.readFileSync(process.env.SECRET_FILE, 'utf8'));
attempt('list the data dir', () => fs.readdirSync(process.env.DATA_DIR));
attempt('write into the data dir', () => fs.writeFileSync(path.join(process.env.DATA_DIR, 'pwned'), 'x'));
attempt('list the job dir', () => fs.readdirSync(path.dirname(process.env.HOME)));
attempt("list the stager's work dir", () => fs.readdirSync(path.dirname(path.dirname(process.env.HOME))));
attempt("read the stager's environment", () => fs.readFileSync('/proc/' + process.env.STAGER_PID + '/environ', 'utf8'));
// A daemon of its own session: npm's end does not end it.
const daemon = spawn('/bin/sh', ['-c', 'while :; do echo tick >> "$1"; sleep 0.1; done', 'sh', process.env.MARKER], { detached: true, stdio: 'ignore' });
daemon.unref();
say('daemon=' + daemon.pid);
const until = Date.now() + 5000;
while (Date.now() < until && !(fs.existsSync(process.env.MARKER) && fs.statSync(process.env.MARKER).size > 0)) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
}
`;

/** A Node.js app whose dependency makes npm install run, and whose postinstall is `script`. */
function appWithPostinstall(script: string): Buffer {
  return tarGzTree({
    'package.json': JSON.stringify({
      name: 'hostile', version: '1.0.0', scripts: { start: 'node server.js', postinstall: 'node postinstall.js' },
      dependencies: { localdep: 'file:./vendor/localdep' },
    }),
    'postinstall.js': script,
    'server.js': '',
    'vendor/localdep/package.json': JSON.stringify({ name: 'localdep', version: '1.0.0' }),
  });
}

function success(reply: StagerReply): StagerSuccess {
  if (isStagerFailure(reply)) throw new Error(`staging failed: ${reply.error}\n${reply.log}`);
  return reply;
}

function failure(reply: StagerReply): StagerFailure {
  if (!isStagerFailure(reply)) throw new Error(`staging succeeded, expected a failure: ${reply.log}`);
  return reply;
}

let env: StagerEnv;
t.before(async () => {
  if (!skip) env = await startStagerEnv(t);
});

t.test('a postinstall script runs as a build uid and reaches nothing of the platform', { skip }, async (t) => {
  // The data dir's stand-in: passable (as /var/lib is), not listable, holding a root-only secret.
  const outer = scratchDir(t, 'skiff-tenancy-');
  chmodSync(outer, 0o711);
  const dataDir = join(outer, 'data');
  mkdirSync(dataDir, { mode: 0o711 });
  const secret = join(dataDir, 'admin.json');
  writeFileSync(secret, '{"password":"hunter2"}', { mode: 0o600 });
  const markers = join(outer, 'markers');
  mkdirSync(markers);
  chmodSync(markers, 0o777);
  const marker = join(markers, 'daemon.log');

  const { reply, published } = await env.stage('tenancy-hostile', appWithPostinstall(HOSTILE), {
    env: {
      SECRET_FILE: secret, DATA_DIR: dataDir, MARKER: marker, STAGER_PID: String(process.pid),
      // npm shows install scripts' output only when asked.
      npm_config_foreground_scripts: 'true',
    },
  });
  const ok = success(reply);
  // Were the stager to leave it running, the test ends it.
  const daemon = Number(/HOSTILE daemon=(\d+)/.exec(ok.log)?.[1]);
  t.teardown(() => {
    if (daemon > 0 && isAlive(daemon)) process.kill(daemon, 'SIGKILL');
  });
  t.equal(published, ok.log);
  const said = (what: string) => new RegExp(`HOSTILE ${what.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: (.*)`).exec(ok.log)?.[1];

  const ids = /HOSTILE uid=(\d+) gid=(\d+) groups=(.*)/.exec(ok.log);
  t.ok(ids, 'the script ran and said who it is');
  const uid = Number(ids![1]);
  t.not(uid, 0, 'not root');
  t.ok(inRange(DEFAULT_BUILD_UIDS, uid), `uid ${uid} is a build uid (${DEFAULT_BUILD_UIDS.first}-${DEFAULT_BUILD_UIDS.last})`);
  t.equal(Number(ids![2]), uid, 'gid = uid');
  t.notOk(ids![3]!.split(',').includes('0'), 'not in group root');

  t.equal(said('read the secret'), 'refused EACCES');
  t.equal(said('list the data dir'), 'refused EACCES');
  t.equal(said('write into the data dir'), 'refused EACCES');
  t.equal(said('list the job dir'), 'refused EACCES');
  t.equal(said("list the stager's work dir"), 'refused EACCES');
  t.equal(said("read the stager's environment"), 'refused EACCES');
  t.same(readdirSync(dataDir), ['admin.json'], 'nothing appeared in the data dir');
  t.equal(readFileSync(secret, 'utf8'), '{"password":"hunter2"}');

  // The daemon ran, and is gone since staging ended.
  t.ok(existsSync(marker) && statSync(marker).size > 0, 'the daemon started and ticked');
  t.ok(daemon > 0, 'the daemon said its pid');
  t.notOk(isAlive(daemon), 'the daemon is dead');
  t.same(await pidsOf(uid), [], 'no process of the build uid is left');
  const size = statSync(marker).size;
  await sleep(600);
  t.equal(statSync(marker).size, size, 'the marker stopped growing');

  // The build's own result is in the droplet as usual.
  const dir = await env.droplet(ok.sha1);
  t.ok(existsSync(join(dir, 'app/node_modules/localdep/package.json')), 'the dependency is in the droplet');
});

t.test('a build that leaves a symlink out of the app fails staging, naming it', { skip }, async (t) => {
  const { reply, published } = await env.stage('tenancy-symlink', appWithPostinstall(`require('fs').symlinkSync('/var/lib/skiff/admin.json', 'x');`));
  const err = failure(reply);
  t.equal(err.error, 'the build left a symlink that leads outside the app: app/x -> /var/lib/skiff/admin.json');
  t.match(err.log, /\n-----> Staging failed: the build left a symlink that leads outside the app: app\/x -> \/var\/lib\/skiff\/admin\.json\n$/);
  t.equal(published, err.log);
});

t.test('a build that leaves a symlink out through .. fails staging', { skip }, async (t) => {
  const { reply } = await env.stage('tenancy-dotdot', appWithPostinstall(`require('fs').symlinkSync('../../home/.npmrc', 'node_modules/y');`));
  t.equal(failure(reply).error, 'the build left a symlink that leads outside the app: app/node_modules/y -> ../../home/.npmrc');
});

t.test('a build that leaves a fifo fails staging, naming it', { skip }, async (t) => {
  const { reply } = await env.stage('tenancy-fifo', appWithPostinstall(`require('child_process').execFileSync('mkfifo', ['pipe']);`));
  t.equal(failure(reply).error, 'the build left a fifo, which a droplet cannot hold: app/pipe');
});
