// The services role in a test: a real nats-server with `skiff up`'s
// authorization, `skiff services-node` as its own process on a temp data
// dir (connected as the `services` NATS user), a controller-side bus (the
// `controller` user, the only one that may ask a services node) and an
// operator bus to look at the bucket. Ports and ids come from blocks of
// their own, so test files side by side do not meet. At teardown the role
// is stopped, and any process still working in its data dir (a backend)
// is killed by pid before the data dir goes.

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KV } from 'nats';
import { connectBus, type Bus } from '../bus/connection';
import { openKv } from '../bus/jetstream';
import { silentLogger } from '../bus/log';
import { SERVICES_BUCKET } from '../bus/platform';
import type { InstanceRecord } from '../services/store';
import { SKIFF_BIN } from './cli_harness';
import { deathSignalPrefix, eventually, freePort, isAlive, sleep, type TeardownHost } from './harness';
import { startSecuredNats, type SecuredNats } from './secured_nats';

export interface ServicesRole {
  readonly pid: number;
  /** Everything it logged, across restarts. */
  log(): string;
  /** Starts it (again) and waits until it says it is ready. */
  start(): Promise<void>;
  /** Sends `signal` and waits until it has exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
  readonly running: boolean;
}

export interface ServicesRig {
  nats: SecuredNats;
  node: string;
  dataDir: string;
  role: ServicesRole;
  /** As the controller: a request to a services node, its reply. */
  ask<T = Record<string, unknown>>(subject: string, body: object, timeoutMs?: number): Promise<T>;
  /** The operator's view of the services bucket. */
  record(id: string): Promise<InstanceRecord | undefined>;
  kv: KV;
  operator: Bus;
  /** With `metrics`: where its /metrics is, and the basic-auth header it takes. */
  metrics?: { url: string; authorization: string };
  /** With `metrics`: its /metrics text (throws on anything but 200). */
  scrape(): Promise<string>;
}

/** A process whose working directory is inside `dir`, from /proc. */
export interface ProcessIn {
  pid: number;
  comm: string;
  cwd: string;
  uid: number;
}

export function processesIn(dir: string): ProcessIn[] {
  const found: ProcessIn[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      if (cwd !== dir && !cwd.startsWith(dir + '/')) continue;
      if (!isAlive(Number(entry))) continue;
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      found.push({ pid: Number(entry), comm: readFileSync(`/proc/${entry}/comm`, 'utf8').trim(), cwd, uid });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** A block of `size` ports in 63000-64999, at random (test files run side by side). */
function portBlock(size: number): string {
  const first = 63000 + Math.floor(Math.random() * (2000 / size)) * size;
  return `${first}-${first + size - 1}`;
}

function idBlock(): string {
  const first = 2_200_000 + Math.floor(Math.random() * 99) * 1000;
  return `${first}-${first + 999}`;
}

export async function startServicesRig(t: TeardownHost, opts: { node?: string; sweepInterval?: number; metrics?: boolean } = {}): Promise<ServicesRig> {
  const nats = await startSecuredNats(t);
  const dataDir = mkdtempSync(join(tmpdir(), 'skiff-services-'));
  // As root the backends run as other users, who traverse it; the platform's own data dir is 0711.
  chmodSync(dataDir, 0o711);
  const node = opts.node ?? `svc-${Math.random().toString(36).slice(2, 8)}`;
  const args = [
    'services-node', '--data-dir', dataDir, '--nats', nats.server.url, '--ports', portBlock(50), '--service-ids', idBlock(),
    '--sweep-interval', String(opts.sweepInterval ?? 300),
  ];
  const metricsPassword = `metrics-${Math.random().toString(36).slice(2)}-pw`;
  let metrics: ServicesRig['metrics'];
  if (opts.metrics === true) {
    const port = await freePort();
    args.push('--metrics-port', String(port), '--metrics-host', '127.0.0.1');
    metrics = { url: `http://127.0.0.1:${port}/metrics`, authorization: `Basic ${Buffer.from(`metrics:${metricsPassword}`).toString('base64')}` };
  }
  const credentials = nats.credentialsFile('services');
  let child: ChildProcess | undefined;
  let log = '';
  let exited: Promise<void> = Promise.resolve();
  const role: ServicesRole = {
    get pid() {
      return child?.pid ?? -1;
    },
    log: () => log,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async start() {
      const from = log.length;
      const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_NATS_CREDENTIALS: credentials, SKIFF_NODE: node };
      if (metrics !== undefined) env.SKIFF_SERVICES_METRICS_PASSWORD = metricsPassword;
      delete env.NATS_URL;
      // tap's NODE_OPTIONS (its --import) must not follow the role; `env -u` drops it and execs.
      const [command, ...rest] = [...deathSignalPrefix(), '/usr/bin/env', '-u', 'NODE_OPTIONS', process.execPath, SKIFF_BIN, ...args];
      const started = spawn(command!, rest, { env, stdio: ['ignore', 'ignore', 'pipe'] });
      child = started;
      started.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
      exited = new Promise((resolve) => started.once('exit', () => resolve()));
      await eventually(() => log.slice(from).includes('services node ready') || started.exitCode !== null, 'the services node to be ready', 90_000);
      if (started.exitCode !== null) throw new Error(`skiff services-node exited ${started.exitCode}:\n${log.slice(from)}`);
    },
    async kill(signal) {
      if (child === undefined || !role.running) return;
      child.kill(signal);
      await exited;
    },
  };
  t.teardown(async () => {
    if (role.running) {
      const killer = setTimeout(() => child?.kill('SIGKILL'), 30_000);
      await role.kill('SIGTERM');
      clearTimeout(killer);
    }
    // The backends end with the role (a parent-death signal); whatever still works in the data dir goes by pid.
    await eventually(() => processesIn(dataDir).length === 0, 'the backends to end with the role', 15_000).catch(() => {
      for (const p of processesIn(dataDir)) process.kill(p.pid, 'SIGKILL');
    });
    await sleep(100);
    rmSync(dataDir, { recursive: true, force: true });
  });
  await role.start();

  const connect = async (user: 'controller' | 'operator'): Promise<Bus> => {
    const bus = await connectBus({ servers: nats.server.url, name: `test-${user}`, logger: silentLogger, auth: { user, pass: nats.password[user], origin: 'the test' } });
    t.teardown(() => bus.close());
    return bus;
  };
  const controller = await connect('controller');
  const operator = await connect('operator');
  const kv = await openKv(operator.nats.jetstream(), SERVICES_BUCKET);
  return {
    nats,
    node,
    dataDir,
    role,
    kv,
    operator,
    ask: <T>(subject: string, body: object, timeoutMs = 90_000) => controller.request<T>(subject, body, timeoutMs),
    metrics,
    async scrape() {
      if (metrics === undefined) throw new Error('the rig was started without metrics');
      const reply = await fetch(metrics.url, { headers: { authorization: metrics.authorization } });
      if (reply.status !== 200) throw new Error(`the services node's /metrics answered ${reply.status}`);
      return reply.text();
    },
    async record(id) {
      const entry = await kv.get(id);
      return entry === null || entry.operation !== 'PUT' ? undefined : (JSON.parse(new TextDecoder().decode(entry.value)) as InstanceRecord);
    },
  };
}
