// `skiff up` as a user runs it: a whole platform on free ports under a temp
// data dir, stopped with SIGTERM, leaving no process behind. Roles not yet on
// this branch (controller, stager, DEA, health manager) are skipped with a
// warning; where the controller is present, the admin login and `api:` line
// are checked too.

import t from 'tap';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectBus } from '../../bus/connection';
import { decodeJoinToken } from '../../cli/node/token';
import { silentLogger } from '../../bus/log';
import { eventually, freePort, isAlive } from '../harness';
import { finish, skiff, spawnSkiff, tempHome } from '../cli_harness';
import { descendants } from '../platform_harness';

const HAS_CONTROLLER = existsSync(join(__dirname, '..', '..', 'dist', 'control', 'controller', 'main.js'));
const HAS_DEA = existsSync(join(__dirname, '..', '..', 'dist', 'dea', 'main.js'));

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
    t.match(out, /^login: SKIFF_PASSWORD=\S+ skiff login --email admin@skiff\.local$/m, 'first start prints the login line');
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
    if (!existsSync(join(__dirname, '..', '..', 'dist', ...(role === 'dea' ? ['dea'] : ['control', role]), 'main.js'))) {
      t.match(err, new RegExp(`skipping the ${role === 'health' ? 'health manager' : role}: not part of this build`));
    }
  }

  if (HAS_DEA) await eventually(() => first.output().err.includes('DEA listening'), 'the DEA is ready', 20_000);
  const children = descendants(first.child.pid!);

  // The bus: no anonymous access, a user per role, secrets in 0600 files and on no command line.
  const natsDir = join(dataDir, 'nats');
  t.equal(statSync(natsDir).mode & 0o777, 0o700, 'nats/ is 0700');
  const secrets = readdirSync(natsDir).filter((name) => name.endsWith('.json') || name.endsWith('.conf'));
  t.same(secrets.sort(), ['controller.json', 'dea.json', 'health.json', 'nats-server.conf', 'node.json', 'operator.json', 'router.json', 'secrets.json', 'services.json', 'stager.json']);
  // A node alone is still the first node of a cluster: it says how another joins it, and what it runs.
  const joinLine = /^join: skiff up --join (skiff1-\S+)$/m.exec(first.output().out);
  t.ok(joinLine, 'the join: line');
  t.same(decodeJoinToken(joinLine![1]!).servers, [`nats://127.0.0.1:${first.ports.nats}`], 'the token names this NATS');
  t.match(first.output().out, /^node: \S+ \(router, controller, stager, dea, health, services, nats-server\)$/m);
  // The data services run by default, idle (no backend) until an instance is provisioned.
  await eventually(() => first.output().err.includes('services: services node ready'), 'the services node is ready', 30_000);
  t.equal(modeOf(join(dataDir, 'services')), '711', 'its directory: traverse-only, for the apps\' shared directories');
  t.same(descendants(first.child.pid!).filter((pid) => /redis-server|postgres/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))), [], 'no backend runs before an instance needs it');
  for (const name of secrets) t.equal(statSync(join(natsDir, name)).mode & 0o777, 0o600, `${name} is 0600`);
  const natsUrl = `nats://127.0.0.1:${first.ports.nats}`;
  await t.rejects(connectBus({ servers: natsUrl, name: 'anonymous', logger: silentLogger }), /refused an anonymous connection/);
  const operator = JSON.parse(readFileSync(join(natsDir, 'operator.json'), 'utf8'));
  t.same(operator.servers, [natsUrl]);
  const asOperator = await connectBus({ servers: natsUrl, name: 'operator', logger: silentLogger, auth: { user: operator.user, pass: operator.pass, origin: 'operator.json' } });
  t.ok(asOperator.isConnected(), 'operator.json connects');
  await asOperator.close();
  const passwords = secrets.filter((name) => name.endsWith('.json')).map((name) => JSON.parse(readFileSync(join(natsDir, name), 'utf8')).pass as string);
  const commandLines = children.map((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return '';
    }
  });
  t.ok(commandLines.some((line) => line.includes('nats-server')), 'the command lines were read');
  t.notOk(commandLines.some((line) => passwords.some((password) => line.includes(password))), 'no NATS password on any command line');
  t.notMatch(first.output().err, /status credentials generated/, 'the router\'s status password is kept in router-status.json, never logged');
  t.equal(statSync(join(dataDir, 'router-status.json')).mode & 0o777, 0o600);
  t.ok(children.length >= 2, 'nats-server and the router run as children');
  if (HAS_CONTROLLER) {
    // The admin changes the first password: admin.json keeps the old one.
    const adminPassword = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')).password as string;
    const changed = await skiff(['passwd', '--old', adminPassword, '--new', 'a-new-admin-password-1'], home);
    t.equal(changed.code, 0, changed.stderr);
  }
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
    const again = readdirSync(natsDir).filter((name) => name.endsWith('.json')).map((name) => JSON.parse(readFileSync(join(natsDir, name), 'utf8')).pass as string);
    t.same(again, passwords, 'the NATS passwords are kept across starts');
    t.notMatch(second.output().out, /^login:/m, 'a second start keeps the admin and prints no login line');
    await eventually(() => second.output().out.includes('api: '), 'the api line again', 30_000);
    t.notMatch(second.output().err, /could not log the local CLI in/, 'the CLI\'s working token is kept: no login with admin.json\'s old password (it would count towards the lockout)');
    t.equal((await skiff(['apps'], home)).code, 0, 'the CLI still works');
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
  const uids = await finish(spawnSkiff(['up', '--app-uids', '0-100'], home));
  t.equal(uids.code, 2);
  t.equal(uids.stderr, 'skiff up: --app-uids must be FIRST-LAST with 1000 <= FIRST <= LAST <= 2147483646, got 0-100\n');
});
