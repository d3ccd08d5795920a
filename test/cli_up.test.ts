// `skiff up` as a user runs it: a whole platform on free ports under a temp
// data dir, stopped with SIGTERM, leaving no process behind. Roles not yet on
// this branch (controller, stager, DEA, health manager) are skipped with a
// warning; where the controller is present, the admin login and `api:` line
// are checked too.

import t from 'tap';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, freePort, isAlive } from './harness';
import { finish, spawnSkiff, tempHome } from './cli_harness';
import { descendants } from './platform_harness';

const HAS_CONTROLLER = existsSync(join(__dirname, '..', 'dist', 'control', 'controller', 'main.js'));
const HAS_DEA = existsSync(join(__dirname, '..', 'dist', 'dea', 'main.js'));

function status(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', () => resolve(0));
  });
}

async function startUp(t: tap.Test, dataDir: string, home: string) {
  const ports = { router: await freePort(), status: await freePort(), api: await freePort(), nats: await freePort() };
  const child = spawnSkiff(
    ['up', '--data-dir', dataDir, '--router-port', String(ports.router), '--router-status-port', String(ports.status), '--api-port', String(ports.api), '--nats-port', String(ports.nats)],
    home,
  );
  const done = finish(child, 60_000);
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: string) => (out += chunk));
  child.stderr!.on('data', (chunk: string) => (err += chunk));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, done, ports, output: () => ({ out, err }) };
}

t.test('skiff up starts what this build has, reports it, and stops it all on SIGTERM', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'skiff-up-'));
  // As root, app instances run as an unprivileged user that must reach the DEA's directories.
  chmodSync(dataDir, 0o755);
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const home = tempHome(t);

  const first = await startUp(t, dataDir, home);
  await eventually(() => first.output().out.includes('router: '), 'the router line', 30_000);
  const { out, err } = first.output();
  t.match(out, `router: http://localhost:${first.ports.router}/`);
  t.equal(await status(first.ports.status, '/health'), 200, 'the router serves');
  const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);
  t.equal(modeOf(dataDir), '711', 'the data dir: apps may pass through it, not list it');
  t.equal(modeOf(join(dataDir, 'nats-server.log')), '600', 'nats-server.log: the platform\'s alone');
  t.equal(modeOf(join(dataDir, 'nats')), '700', 'the JetStream store: the platform\'s alone');
  if (HAS_CONTROLLER) {
    t.match(out, /^login: skiff login --email admin@skiff\.local --password \S+$/m, 'first start prints the login line');
    t.match(out, `api: http://127.0.0.1:${first.ports.api}\n`);
    t.equal(statSync(join(dataDir, 'admin.json')).mode & 0o777, 0o600);
    const config = JSON.parse(readFileSync(join(home, 'config.json'), 'utf8'));
    t.equal(config.target, `http://127.0.0.1:${first.ports.api}`, 'the local CLI is logged in');
    t.type(config.token, 'string');
  } else {
    t.match(err, /skipping the controller: not part of this build/);
    t.notMatch(out, /^login:/m);
  }
  for (const role of ['stager', 'health', 'dea']) {
    if (!existsSync(join(__dirname, '..', 'dist', ...(role === 'dea' ? ['dea'] : ['control', role]), 'main.js'))) {
      t.match(err, new RegExp(`skipping the ${role === 'health' ? 'health manager' : role}: not part of this build`));
    }
  }

  if (HAS_DEA) await eventually(() => first.output().err.includes('DEA listening'), 'the DEA is ready', 20_000);
  const children = descendants(first.child.pid!);
  t.ok(children.length >= 2, 'nats-server and the router run as children');
  first.child.kill('SIGTERM');
  const run = await first.done;
  t.equal(run.code, 0, 'exits 0 on SIGTERM');
  if (HAS_DEA) {
    const stopping = run.stderr.slice(run.stderr.indexOf('up: stopping the platform'));
    t.ok(stopping.indexOf('dea-0: stopping') !== -1 && stopping.indexOf('dea-0: stopping') < stopping.indexOf('router: stopping'), 'the DEA stops before the router');
    t.notMatch(run.stderr, /dea exited; restarting/, 'the DEA ran without crashing');
  }
  await eventually(() => children.every((pid) => !isAlive(pid)), 'every role process has ended', 5000);

  if (HAS_CONTROLLER) {
    // As an older `skiff up` left them.
    chmodSync(dataDir, 0o755);
    chmodSync(join(dataDir, 'nats-server.log'), 0o644);
    const second = await startUp(t, dataDir, home);
    await eventually(() => second.output().out.includes('router: '), 'the router line again', 30_000);
    t.notMatch(second.output().out, /^login:/m, 'a second start keeps the admin and prints no login line');
    t.equal(modeOf(dataDir), '711', 'a data dir from before is made traverse-only');
    t.equal(modeOf(join(dataDir, 'nats-server.log')), '600', 'and its nats-server.log private');
    second.child.kill('SIGINT');
    t.equal((await second.done).code, 0, 'exits 0 on Ctrl-C');
  }
});

t.test('skiff up refuses bad flags with one line', async (t) => {
  const home = tempHome(t);
  const run = await finish(spawnSkiff(['up', '--api-port', 'x'], home));
  t.equal(run.code, 2);
  t.equal(run.stderr, 'skiff up: --api-port must be a number, got "x"\n');
});
