#!/usr/bin/env node
// `npm run setup`: everything a fresh machine needs before `npm start`:
// the npm dependencies (which also builds dist/ through `prepare`),
// nats-server, and the backends of the data services (redis-server,
// PostgreSQL). Plain JavaScript: it runs before anything is compiled.
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
if (onPath('nats-server')) {
  console.log('setup: nats-server is installed');
} else if (existsSync('/etc/debian_version') && process.getuid && process.getuid() === 0) {
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', 'nats-server']);
} else {
  const how = existsSync('/etc/debian_version')
    ? 'sudo apt-get install -y nats-server'
    : 'install nats-server 2.9 or newer from your package manager (e.g. `brew install nats-server`)';
  console.error(`setup: nats-server is missing; ${how}, then run npm run setup again`);
  process.exit(1);
}
// 3. The data services' backends: the services role runs its own redis-servers and PostgreSQL cluster.
const missing = [];
if (!onPath('redis-server')) missing.push('redis-server');
if (!postgresInstalled()) missing.push('postgresql');
if (missing.length === 0) {
  console.log('setup: redis-server and postgresql are installed');
} else if (existsSync('/etc/debian_version') && process.getuid && process.getuid() === 0) {
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing]);
  // Debian starts its own redis-server and PostgreSQL cluster on the default ports; Skiff runs its
  // own under the data dir, so the packages' services are turned off where systemd runs them.
  if (existsSync('/run/systemd/system')) {
    const units = missing.map((pkg) => (pkg === 'redis-server' ? 'redis-server.service' : 'postgresql.service'));
    spawnSync('systemctl', ['disable', '--now', ...units], { stdio: 'inherit' });
  }
} else {
  const how = existsSync('/etc/debian_version') ? `sudo apt-get install -y ${missing.join(' ')}` : `install ${missing.join(' and ')} from your package manager`;
  // Not fatal: the platform runs without them, and the services role says which service it cannot offer.
  console.error(`setup: ${missing.join(' and ')} missing (the redis and postgresql services need them); ${how}`);
}

/** Debian's PostgreSQL: /usr/lib/postgresql/<version>/bin/initdb; elsewhere initdb on PATH. */
function postgresInstalled() {
  const root = '/usr/lib/postgresql';
  if (existsSync(root) && readdirSync(root).some((v) => existsSync(join(root, v, 'bin', 'initdb')))) return true;
  return onPath('initdb');
}

const version = spawnSync('nats-server', ['--version'], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH}${delimiter}/usr/sbin` } });
console.log(`setup: ready (${(version.stdout || '').trim() || 'nats-server'}); start the platform with: npm start`);
