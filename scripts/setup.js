#!/usr/bin/env node
// `npm run setup`: everything a fresh machine needs before `npm start`:
// the npm dependencies (which also builds dist/ through `prepare`),
// nats-server, and the data services' backends (redis-server, PostgreSQL,
// and setfacl for the shared directories). Plain JavaScript: it runs before
// anything is compiled.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const { existsSync, readdirSync } = require('node:fs');
const { delimiter, join } = require('node:path');

const root = join(__dirname, '..');

function run(command, args) {
  console.log(`setup: ${command} ${args.join(' ')}`);
  execFileSync(command, args, { cwd: root, stdio: 'inherit' });
}

function onPath(name) {
  const dirs = (process.env.PATH || '').split(delimiter).filter(Boolean).concat('/usr/sbin', '/usr/local/sbin');
  return dirs.some((dir) => existsSync(join(dir, name)));
}

// 1. Dependencies, exactly as locked; `prepare` compiles TypeScript to dist/.
run('npm', [existsSync(join(root, 'package-lock.json')) ? 'ci' : 'install']);

// 2. nats-server, the bus every role talks over.
let aptUpdated = false;
if (onPath('nats-server')) {
  console.log('setup: nats-server is installed');
} else if (existsSync('/etc/debian_version') && process.getuid && process.getuid() === 0) {
  run('apt-get', ['update', '-qq']);
  aptUpdated = true;
  run('apt-get', ['install', '-y', '-qq', 'nats-server']);
} else {
  const how = existsSync('/etc/debian_version')
    ? 'sudo apt-get install -y nats-server'
    : 'install nats-server 2.9 or newer from your package manager (e.g. `brew install nats-server`)';
  console.error(`setup: nats-server is missing; ${how}, then run npm run setup again`);
  process.exit(1);
}

// 3. The data services' backends (`skiff services-node`): Debian's packages,
// which the services node runs itself. Without them the platform runs and
// offers what it can: a node offers only the services whose backend it has.
const backends = [
  { name: 'redis-server', package: 'redis-server', unit: 'redis-server.service', present: () => onPath('redis-server') },
  { name: 'PostgreSQL', package: 'postgresql', unit: 'postgresql.service', present: postgresInstalled },
  { name: 'setfacl', package: 'acl', present: () => onPath('setfacl') },
];
const missing = backends.filter((backend) => !backend.present());
if (missing.length === 0) {
  console.log('setup: redis-server, PostgreSQL and setfacl are installed');
} else if (existsSync('/etc/debian_version') && process.getuid && process.getuid() === 0) {
  if (!aptUpdated) run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing.map((backend) => backend.package)]);
  // Debian starts the packages' own redis-server (no password, on 127.0.0.1:6379, where any app on
  // this host could use it) and PostgreSQL cluster. Skiff runs its own under the data dir, so the
  // services of the packages installed here for it are turned off where systemd runs them.
  const units = missing.map((backend) => backend.unit).filter(Boolean);
  if (units.length > 0 && existsSync('/run/systemd/system')) spawnSync('systemctl', ['disable', '--now', ...units], { stdio: 'inherit' });
} else {
  const how = existsSync('/etc/debian_version') ? `sudo apt-get install -y ${missing.map((backend) => backend.package).join(' ')}` : `install ${missing.map((backend) => backend.name).join(', ')} from your package manager`;
  console.warn(`setup: the data services lack ${missing.map((backend) => backend.name).join(', ')}; ${how} (the platform runs without them, offering what it has)`);
}

/** Debian's PostgreSQL: /usr/lib/postgresql/<version>/bin/initdb; elsewhere initdb on PATH. */
function postgresInstalled() {
  const root = '/usr/lib/postgresql';
  if (existsSync(root) && readdirSync(root).some((v) => existsSync(join(root, v, 'bin', 'initdb')))) return true;
  return onPath('initdb');
}

const version = spawnSync('nats-server', ['--version'], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH}${delimiter}/usr/sbin` } });
console.log(`setup: ready (${(version.stdout || '').trim() || 'nats-server'}); start the platform with: npm start`);
