// Tenancy end to end, as root (as CI runs): `skiff up`, two users, an app
// each. Bob's app keeps a secret in its files and has a crashed instance;
// Alice's app is a curious tenant (test/fixtures/tenant-probe) that tries,
// from its build step and from inside its running process, every way in:
// anonymous NATS, every NATS URL or credential in /proc/*/cmdline and any
// environment it can read, the platform's files, Bob's live and crashed
// instance directories and /proc/<pid>/cwd, and signals to the platform's
// processes and Bob's. Every attempt must be refused, and both apps keep
// serving.

import { cpSync, existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_APP_UIDS, DEFAULT_BUILD_UIDS, formatRange, inRange } from '../../bus/uids';
import { skiff, tempHome } from '../cli_harness';
import { eventually } from '../harness';
import { descendants, platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';

const PROBE_APP = join(__dirname, '..', 'fixtures', 'tenant-probe');

interface Attempt {
  outcome: string;
}
interface ProcessSeen {
  pid: number;
  uid: number;
  cmdline: string;
  signal: string;
  environ: string;
  cwd: string;
  mem: string;
}
interface Report {
  uid: number;
  gid: number;
  processes: ProcessSeen[];
  credentials: Array<{ pid: number; user?: string; pass: string }>;
  nats: Array<{ port: number; as: string; outcome: string }>;
  reads: Array<Attempt & { path: string }>;
  lists: Array<Attempt & { path: string }>;
  writes: Array<Attempt & { path: string }>;
  signals: Array<Attempt & { pid: number }>;
}

function request(port: number, host: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: body === undefined ? 'GET' : 'POST', headers: { host }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A copy of the probe app under its own name, with a manifest (and for Bob, a secret among its files). */
function appDir(t: tap.Test, name: string, env: Record<string, string>, secret?: string): string {
  const dir = join(platformDataDir(t, `skiff-tenant-${name}-`), name);
  cpSync(PROBE_APP, dir, { recursive: true });
  const envLines = Object.entries(env).map(([key, value]) => `  ${key}: ${JSON.stringify(value)}`);
  writeFileSync(join(dir, 'manifest.yml'), [`name: ${name}`, 'memory: 128M', 'command: node server.js', 'env:', `  SECRET_NAME: ${name}`, ...envLines, ''].join('\n'));
  if (secret !== undefined) writeFileSync(join(dir, 'keeper-secret.txt'), secret);
  return dir;
}

/** The instance directories holding `file` in their app/, from root's side of the data dir. */
function instanceDirsWith(dataDir: string, file: string): string[] {
  const instances = join(dataDir, 'dea', '0', 'instances');
  return readdirSync(instances).map((id) => join(instances, id)).filter((dir) => existsSync(join(dir, 'app', file)));
}

/** The pid whose working directory is `dir` (an instance's app/), read as root. */
function pidIn(dir: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`) === dir) return Number(entry);
    } catch {
      // gone, or a kernel thread
    }
  }
  return undefined;
}

t.test('no app can act as the platform or see another app', { skip: process.getuid?.() !== 0 ? 'needs root, as CI runs' : false }, async (t) => {
  const dataDir = platformDataDir(t, 'skiff-tenancy-');
  const admin = tempHome(t);
  const ports = await platformPorts();
  // A block of the default range of its own (skiff up --app-uids reaches the controller and the DEA).
  const block = DEFAULT_APP_UIDS.first + 1000 * Math.floor(Math.random() * 100);
  const appUids = { first: block, last: block + 999 };
  const platform = startSkiffTree(t, [...upArgs(dataDir, ports), '--app-uids', formatRange(appUids)], admin, 300_000);
  await eventually(() => platform.out().includes('api: ') && platform.out().includes('router: '), 'skiff up to be ready', 60_000);
  const api = `http://127.0.0.1:${ports.api}`;
  const run = async (home: string, args: string[], what: string): Promise<string> => {
    const result = await skiff(args, home);
    t.equal(result.code, 0, `${what} (${result.stderr.trim().split('\n').slice(-3).join(' | ')})`);
    return result.stdout;
  };

  const users: Record<'alice' | 'bob', string> = { alice: tempHome(t), bob: tempHome(t) };
  for (const [name, home] of Object.entries(users)) {
    await run(admin, ['add-user', `${name}@example.com`, '--password', `${name}-password-1`], `add ${name}`);
    await run(home, ['target', api], `${name} targets the API`);
    await run(home, ['login', '--email', `${name}@example.com`, '--password', `${name}-password-1`], `${name} logs in`);
  }

  // Bob's app: a secret among its files, one crashed instance kept with its directory.
  const secret = `bob-secret-${Math.random().toString(36).slice(2)}`;
  await run(users.bob, ['push', appDir(t, 'keeper', {}, secret)], 'bob pushes keeper');
  t.equal((await request(ports.router, 'keeper.localhost', '/exit')).status, 200);
  await eventually(async () => instanceDirsWith(dataDir, 'keeper-secret.txt').length === 2, 'a crashed and a restarted keeper instance', 30_000);
  await eventually(async () => (await request(ports.router, 'keeper.localhost', '/')).status === 200, 'keeper serving again', 30_000);
  const crashes = JSON.parse(await run(users.bob, ['crashes', 'keeper', '--json'], 'keeper crashes')) as Array<{ instance: string }>;
  t.equal(crashes.length, 1);
  const keeperDirs = instanceDirsWith(dataDir, 'keeper-secret.txt');
  const crashedDir = keeperDirs.find((dir) => dir.endsWith(crashes[0]!.instance))!;
  const liveDir = keeperDirs.find((dir) => dir !== crashedDir)!;
  t.ok(crashedDir && liveDir, 'both keeper directories found');
  const keeperPid = pidIn(join(liveDir, 'app'));
  t.type(keeperPid, 'number', 'keeper\'s process found');

  const platformFiles = [
    join(dataDir, 'admin.json'),
    join(dataDir, 'router-status.json'),
    join(dataDir, 'nats-server.log'),
    join(dataDir, 'nats', 'nats-server.conf'),
    join(dataDir, 'nats', 'operator.json'),
    join(dataDir, 'nats', 'dea.json'),
    join(dataDir, 'nats', 'controller.json'),
    join(admin, 'config.json'),
    join(users.bob, 'config.json'),
  ];
  for (const file of platformFiles) t.ok(existsSync(file), `${file} exists (so a refusal is a refusal, not a wrong path)`);
  const targets = {
    natsPorts: [ports.nats],
    read: [
      ...platformFiles,
      join(liveDir, 'app', 'keeper-secret.txt'),
      join(crashedDir, 'app', 'keeper-secret.txt'),
      join(liveDir, 'logs', 'stdout.log'),
      `/proc/${keeperPid}/cwd/keeper-secret.txt`,
      `/proc/${keeperPid}/environ`,
    ],
    list: [dataDir, join(dataDir, 'dea'), join(dataDir, 'dea', '0'), join(dataDir, 'dea', '0', 'instances'), join(dataDir, 'nats'), liveDir, crashedDir, join(liveDir, 'app')],
    write: [dataDir, join(dataDir, 'dea', '0', 'instances'), join(liveDir, 'app')],
    signal: [keeperPid!, platform.pid],
  };

  // Alice's app: the curious tenant. Its build step probes too (TENANT_TARGETS reaches npm's postinstall).
  const pushed = await run(users.alice, ['push', appDir(t, 'peeker', { TENANT_TARGETS: JSON.stringify(targets) })], 'alice pushes peeker');
  t.match(pushed, /tenant build probe ran as uid \d+/, 'the build step ran (postinstall)');
  const build = JSON.parse((await request(ports.router, 'peeker.localhost', '/build-report')).body) as Report;
  const live = JSON.parse((await request(ports.router, 'peeker.localhost', '/probe', JSON.stringify(targets))).body) as Report;

  t.ok(inRange(DEFAULT_BUILD_UIDS, build.uid), `the build ran as a build uid (${build.uid})`);
  t.ok(inRange(appUids, live.uid), `the app runs as an app uid of the platform's --app-uids (${live.uid})`);
  const keeperUid = live.processes.find((p) => p.pid === keeperPid)?.uid;
  t.ok(keeperUid !== undefined && inRange(appUids, keeperUid) && keeperUid !== live.uid, `Bob's app runs as another app uid (${keeperUid})`);

  for (const [where, report] of [['build', build], ['app', live]] as const) {
    t.test(`from the ${where}`, async (t) => {
      // Other test files may run their own NATS servers and processes on this host at the same
      // time: what the platform owns is judged here, every credential is tried on its NATS.
      const platformPids = new Set([platform.pid, ...platform.seen, ...descendants(platform.pid)]);
      const onPlatform = report.nats.filter((n) => n.port === ports.nats);
      t.ok(onPlatform.some((n) => n.as === 'anonymous'), 'tried the platform\'s NATS anonymously');
      t.equal(onPlatform.length, 1 + report.credentials.length, 'and with every credential it found anywhere');
      for (const n of onPlatform) t.equal(n.outcome, 'refused', `the platform's NATS as ${n.as}`);
      t.same(report.credentials.filter((c) => platformPids.has(c.pid)), [], 'no credential in any command line of the platform');
      for (const r of report.reads) t.equal(r.outcome, 'EACCES', `read ${r.path}`);
      for (const r of report.lists) t.equal(r.outcome, 'EACCES', `list ${r.path}`);
      for (const w of report.writes) t.equal(w.outcome, 'EACCES', `write ${w.path}`);
      for (const s of report.signals) t.equal(s.outcome, 'EPERM', `kill -0 ${s.pid}`);
      const others = report.processes;
      const roles = ['nats-server', 'skiff router', 'skiff controller', 'skiff stager', 'skiff health', 'skiff dea'];
      for (const role of roles) t.ok(others.some((p) => p.cmdline.includes(role)), `saw ${role} among other users' processes`);
      for (const p of others) {
        t.equal(p.signal, 'EPERM', `cannot signal ${p.pid} (${p.cmdline.slice(0, 60)})`);
        t.equal(p.environ, 'EACCES', `cannot read the environment of ${p.pid}`);
        t.not(p.mem, 'ok', `cannot open the memory of ${p.pid}`);
      }
    });
  }
  t.equal(live.processes.filter((p) => p.pid === keeperPid).map((p) => p.cwd).join(), 'EACCES', 'nor Bob\'s app\'s working directory');
  t.notOk(readdirSync(dataDir).some((name) => name.startsWith('tenant-was-here')), 'nothing was written into the data dir');

  t.equal((await request(ports.router, 'keeper.localhost', '/')).status, 200, 'Bob\'s app still serves');
  t.equal((await request(ports.router, 'peeker.localhost', '/')).status, 200, 'and so does Alice\'s');
  t.equal(readFileSync(join(liveDir, 'app', 'keeper-secret.txt'), 'utf8'), secret, 'Bob\'s secret is as he left it');
});
