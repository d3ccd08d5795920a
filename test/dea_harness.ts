// Helpers for the DEA's end-to-end tests: droplets built on the fly, a real
// `skiff dea` child process, and a bus client that records what the DEA says.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { c as createTar } from 'tar';
import { connectBus, type Bus } from '../bus/connection';
import { silentLogger } from '../bus/log';
import { ObjectStores } from '../bus/platform';
import { eventually, isAlive, type TeardownHost } from './harness';

const BIN = join(__dirname, '..', 'bin', 'skiff');

/** Builds a droplet tar.gz (droplet.json + app/) and stores it in skiff_droplets; returns its sha1. */
export async function putDroplet(bus: Bus, appFiles: Record<string, string>, startCommand: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-droplet-'));
  try {
    mkdirSync(join(dir, 'app'));
    writeFileSync(join(dir, 'droplet.json'), JSON.stringify({ runtime: 'node', framework: 'node', start_command: startCommand }));
    for (const [name, body] of Object.entries(appFiles)) writeFileSync(join(dir, 'app', name), body);
    const file = join(dir, 'droplet.tgz');
    await createTar({ gzip: true, file, cwd: dir, portable: true }, ['droplet.json', 'app']);
    const bytes = readFileSync(file);
    const sha1 = createHash('sha1').update(bytes).digest('hex');
    const store = await bus.nats.jetstream().views.os(ObjectStores.droplets);
    await store.putBlob({ name: sha1 }, bytes);
    return sha1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * An app that answers with its environment, user and limits, and exits or
 * hogs memory on request. \`/probe?list=DIR&read=FILE&cwd=PID&kill=PID\` (each
 * repeatable) tries those as the app's own user and answers, for each,
 * "ok" or the error code (EACCES, EPERM, ...).
 */
export const ENV_APP = `
const http = require('http');
const fs = require('fs');
function attempt(fn) { try { fn(); return 'ok'; } catch (err) { return err.code || String(err); } }
http.createServer((req, res) => {
  if (req.url === '/exit') { res.end('bye'); setTimeout(() => process.exit(3), 10); return; }
  if (req.url === '/hog') { const keep = []; setInterval(() => keep.push(Buffer.alloc(16 * 1024 * 1024, 1)), 50); res.end('hogging'); return; }
  if (req.url.startsWith('/probe?')) {
    const q = new URL(req.url, 'http://app').searchParams;
    const tried = {};
    for (const dir of q.getAll('list')) tried['list ' + dir] = attempt(() => fs.readdirSync(dir));
    for (const file of q.getAll('read')) tried['read ' + file] = attempt(() => fs.readFileSync(file));
    for (const pid of q.getAll('cwd')) tried['cwd ' + pid] = attempt(() => fs.readlinkSync('/proc/' + pid + '/cwd'));
    for (const pid of q.getAll('kill')) tried['kill ' + pid] = attempt(() => process.kill(Number(pid), 0));
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(tried));
    return;
  }
  const limits = fs.readFileSync('/proc/self/limits', 'utf8');
  const nofile = /Max open files\\s+(\\d+)/.exec(limits)[1];
  console.log('request ' + req.url);
  console.error('to stderr');
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ env: process.env, uid: process.getuid(), cwd: process.cwd(), pid: process.pid, nofile: Number(nofile) }));
}).listen(Number(process.env.PORT), process.env.VCAP_APP_HOST);
`;

export interface DeaProcess {
  child: ChildProcess;
  pid: number;
  dataDir: string;
  /** stderr so far (the DEA logs there). */
  log(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait; SIGKILL after 20 s. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A data dir the app user (nobody) can reach, removed at teardown. */
export function makeDataDir(t: TeardownHost): string {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-dea-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `asUid`: run the DEA itself as this uid (and gid), not as the test's user. */
export function startDea(t: TeardownHost, natsUrl: string, dataDir: string, args: string[] = [], extraEnv: Record<string, string> = {}, asUid?: number): DeaProcess {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', NATS_URL: natsUrl, SKIFF_LOG_LEVEL: 'debug', ...extraEnv };
  // `env -i`: tap puts its loader into NODE_OPTIONS of every child it can see,
  // and that loader adds tap variables to everything the DEA spawns; the DEA
  // must be tested with exactly the environment given here.
  const dropTo = asUid === undefined ? [] : [`--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups'];
  const child = spawn('setpriv', [
    '--pdeathsig', 'SIGKILL', ...dropTo, '--', '/usr/bin/env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    process.execPath, BIN, 'dea', '--data-dir', dataDir, ...args,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    }
    return exited;
  };
  t.teardown(async () => {
    await stop();
  });
  return { child, pid: child.pid!, dataDir, log: () => stderr, exited, stop };
}

export interface Recorder {
  bus: Bus;
  messages: Array<{ subject: string; body: any }>;
  of(subject: string): any[];
  waitFor(subject: string, match: (body: any) => boolean, what: string, timeoutMs?: number): Promise<any>;
}

/** A bus client that keeps every message on the subjects the DEA publishes. */
export async function recorder(t: TeardownHost, natsUrl: string): Promise<Recorder> {
  const bus = await connectBus({ servers: natsUrl, name: 'dea-test', logger: silentLogger });
  t.teardown(() => bus.close());
  const messages: Array<{ subject: string; body: any }> = [];
  for (const subject of ['router.register', 'router.unregister', 'droplet.exited', 'dea.advertise', 'dea.heartbeat', 'dea.start', 'dea.stats']) {
    bus.subscribe(subject, (msg) => messages.push({ subject, body: JSON.parse(new TextDecoder().decode(msg.data)) }));
  }
  await bus.flush();
  const of = (subject: string) => messages.filter((m) => m.subject === subject).map((m) => m.body);
  return {
    bus,
    messages,
    of,
    async waitFor(subject, match, what, timeoutMs = 10_000) {
      let found: any;
      await eventually(() => (found = of(subject).find(match)) !== undefined, what, timeoutMs);
      return found;
    },
  };
}

export function startRequest(overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    droplet: 'app-1', index: 0, name: 'shop', uris: ['shop.localhost'], runtime: 'node', version: 'v-1',
    limits: { mem: 128, disk: 256, fds: 100 }, env: [], services: [], users: ['ann@example.com'],
    ...overrides,
  };
}

export async function waitGone(pid: number, what: string, timeoutMs = 5000): Promise<void> {
  await eventually(() => !isAlive(pid), what, timeoutMs);
}

export async function getJson(port: number, path = '/'): Promise<any> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return res.json();
}
