// `skiff node cloud-init` as an operator runs it: user-data that Debian's
// own `cloud-init schema` accepts, that installs a pinned and checked
// Node.js 20, nats-server and Skiff, and runs `skiff up` under systemd with
// the join token only in a 0600 environment file: never in runcmd, a script
// or a command line.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { skiff, tempHome } from './cli_harness';

const TOKEN = 'sj1.eyJuYXRzIjoibmF0czovLzEwLjAuMC41OjQyMjIifQ.c2VjcmV0LW5vZGUtY3JlZGVudGlhbA';
const SOURCE = 'https://git.example.org/skiff/skiff.git';

function onPath(name: string): string | undefined {
  return ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/bin', '/sbin'].map((dir) => join(dir, name)).find((path) => existsSync(path));
}

interface WriteFile { path: string; permissions?: string; owner?: string; content: string }

/** Every string in a parsed document, with where it sits. */
function strings(value: unknown, at = ''): Array<[string, string]> {
  if (typeof value === 'string') return [[at, value]];
  if (Array.isArray(value)) return value.flatMap((item, i) => strings(item, `${at}[${i}]`));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([key, item]) => strings(item, `${at}.${key}`));
  return [];
}

t.test('user-data for a DEA and router node', async (t) => {
  const home = tempHome(t);
  const run = await skiff(['node', 'cloud-init', '--roles', 'dea,router', '--advertise', '10.0.0.7', '--source', SOURCE, '--ref', 'main'], home, { SKIFF_UP_JOIN: TOKEN });
  t.equal(run.code, 0, run.stderr);
  t.equal(run.stderr, '');
  t.ok(run.stdout.startsWith('#cloud-config\n'), 'starts with #cloud-config');
  const doc = parse(run.stdout) as { packages: string[]; write_files: WriteFile[]; runcmd: string[][]; package_update: boolean };

  const schema = onPath('cloud-init');
  if (schema === undefined) {
    t.pass('cloud-init schema', { skip: "cloud-init is not installed here, so Debian's schema check cannot run (.ci/run installs it: apt-get install cloud-init)" });
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-cloud-init-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'user-data'), run.stdout);
    const checked = spawnSync(schema, ['schema', '--config-file', join(dir, 'user-data')], { encoding: 'utf8' });
    t.equal(checked.status, 0, `cloud-init schema: ${checked.stdout}${checked.stderr}`);
    t.match(checked.stdout, /Valid cloud-config/);
  }

  t.equal(doc.package_update, true);
  for (const pkg of ['nats-server', 'git', 'curl', 'xz-utils', 'nftables']) t.ok(doc.packages.includes(pkg), `installs ${pkg}`);
  t.notOk(doc.packages.includes('nodejs'), "not Debian 12's nodejs, which is 18");

  const file = (path: string) => doc.write_files.find((f) => f.path === path)!;
  const joinEnv = file('/etc/skiff/join.env');
  t.same(joinEnv, { path: '/etc/skiff/join.env', owner: 'root:root', permissions: '0600', content: `SKIFF_UP_JOIN=${TOKEN}\n` }, 'the token in a root-only environment file');
  const holders = strings(doc).filter(([, text]) => text.includes(TOKEN)).map(([at]) => at);
  t.same(holders, ['.write_files[0].content'], 'the token is nowhere else: not in runcmd, the script or the unit');
  t.notOk(strings(doc).some(([, text]) => text.includes(TOKEN.split('.')[2]!) && !text.startsWith('SKIFF_UP_JOIN=')), 'not even a piece of it');

  const unit = file('/etc/systemd/system/skiff.service').content;
  t.match(unit, /^EnvironmentFile=\/etc\/skiff\/join\.env$/m, 'the unit reads the token from the file');
  t.match(unit, /^ExecStart=\/opt\/skiff\/bin\/skiff up --roles dea,router --advertise 10\.0\.0\.7$/m, 'skiff up with the roles; --join comes from SKIFF_UP_JOIN');
  t.match(unit, /^KillMode=mixed$/m, 'systemd signals skiff up, which stops its roles in order');
  t.match(unit, /^WantedBy=multi-user\.target$/m);

  const script = file('/usr/local/lib/skiff/install.sh');
  t.equal(script.permissions, '0755');
  t.match(script.content, /amd64\) arch=x64; sum=4543670b589593f8fa5f106111fd5139081da42bb165a9239f05195e405f240a/, 'Node.js 20.18.0 x64, checked against its published sha256');
  t.match(script.content, /arm64\) arch=arm64; sum=a9ce85675ba33f00527f6234d90000946c0936fb4fca605f1891bb5f4fe6fb0a/);
  t.match(script.content, /sha256sum -c -\n/, 'the tarball is checked before it is unpacked');
  t.ok(script.content.indexOf('sha256sum -c') < script.content.indexOf('tar -xJf'), 'checked, then unpacked');
  t.match(script.content, `git clone --depth 1 --branch main ${SOURCE} /opt/skiff\n`);
  t.match(script.content, /\nnpm run setup\n$/);
  const syntax = spawnSync('sh', ['-n'], { input: script.content, encoding: 'utf8' });
  t.equal(syntax.status, 0, `the install script parses: ${syntax.stderr}`);

  t.same(doc.runcmd, [
    ['systemctl', 'disable', '--now', 'nats-server.service'],
    ['/usr/local/lib/skiff/install.sh'],
    ['systemctl', 'daemon-reload'],
    ['systemctl', 'enable', '--now', 'skiff.service'],
  ], "Debian's own nats-server is stopped; Skiff is installed and started");

  const guard = file('/etc/skiff/metadata-guard.nft').content;
  t.match(guard, /meta skuid \{ 2000000-2100999, 65534 \} ip daddr 169\.254\.169\.254 reject/, "apps and builds cannot fetch the user-data (and its token) from the metadata service");
  t.match(unit, /^ExecStartPre=\/usr\/sbin\/nft -f \/etc\/skiff\/metadata-guard\.nft$/m, 'loaded before skiff up starts any app');
  const nft = onPath('nft');
  if (nft === undefined) t.pass('nft -c', { skip: 'nft is not installed here: the ruleset is not checked (apt-get install nftables)' });
  else {
    const checked = spawnSync(nft, ['-c', '-f', '-'], { input: guard, encoding: 'utf8' });
    t.equal(checked.status, 0, `nft -c accepts the ruleset: ${checked.stderr}`);
  }
});

t.test('bad input: one line, exit 2', async (t) => {
  const home = tempHome(t);
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--roles', 'dea', '--source', SOURCE], {}, /missing --join TOKEN/],
    [['--join', TOKEN, '--source', SOURCE], {}, /missing --roles/],
    [['--join', TOKEN, '--roles', 'dea,db', '--source', SOURCE], {}, /unknown role "db" in --roles/],
    [['--roles', 'dea', '--source', SOURCE], { SKIFF_UP_JOIN: 'abc\nExecStart=/bin/evil' }, /the join token has characters no Skiff token has/],
    [['--join', TOKEN, '--roles', 'dea', '--source', 'https://me:hunter2@git.example.org/s.git'], {}, /--source carries a password/],
    [['--join', TOKEN, '--roles', 'dea', '--source', '/work/main'], {}, /--source must be a URL a new machine can clone from/],
    [['--join', TOKEN, '--roles', 'dea', '--source', SOURCE, '--advertise', 'somewhere'], {}, /--advertise must be an IP address/],
  ];
  for (const [args, env, message] of cases) {
    const run = await skiff(['node', 'cloud-init', ...args], home, env);
    t.equal(run.code, 2, `${args.join(' ')}: exit 2`);
    t.equal(run.stderr.split('\n').length, 2, 'one line');
    t.match(run.stderr, message);
    t.notMatch(run.stderr, /hunter2|evil/, 'secrets are not echoed');
    t.equal(run.stdout, '', 'no half user-data');
  }
  // Without --source: the checkout's remote origin, when a new machine could clone it.
  const remote = spawnSync('git', ['-C', join(__dirname, '..'), 'remote', 'get-url', 'origin'], { encoding: 'utf8' });
  const origin = remote.status === 0 ? remote.stdout.trim() : '';
  const defaulted = await skiff(['node', 'cloud-init', '--join', TOKEN, '--roles', 'dea'], home);
  if (origin === '') {
    t.equal(defaulted.code, 2);
    t.equal(defaulted.stderr, 'skiff node cloud-init: this checkout has no git remote origin: pass --source URL, where the new node clones Skiff from\n');
  } else if (/^(https?|ssh|git):\/\//.test(origin) || /^[^/\s]+@[^/\s]+:/.test(origin)) {
    t.equal(defaulted.code, 0, defaulted.stderr);
    t.match(defaulted.stdout, `git clone --depth 1 ${origin} /opt/skiff`, "the checkout's remote is the default source");
  } else {
    t.equal(defaulted.code, 2, 'a remote that is a local path is no use to a new machine');
    t.match(defaulted.stderr, /this checkout's remote origin must be a URL a new machine can clone from/);
  }
  const unknown = await skiff(['node', 'frobnicate'], home);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /^skiff node: unknown subcommand "frobnicate"/);
});
