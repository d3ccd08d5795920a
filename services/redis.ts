// The redis service: a redis-server per instance, on its own port of the
// node's --ports, with its own password, its own directory and, as root,
// its own uid (the instance's id of --service-ids), so that one tenant's
// redis-server cannot touch another's files whatever it is made to do.
// Append-only file on (fsync every second): a redis-server killed and
// restarted by the node comes back with its data. maxmemory per plan with
// noeviction: a full instance refuses writes rather than dropping data.
// The password is in its config file (0600, the instance's uid), never on
// a command line.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ServiceBindReply } from '../bus/platform';
import { findBinary, listDir, processesNamed, uriHost, waitFor, type Backend, type BackendContext, type Health, type Stray } from './backend';
import { ensureDir, isRoot, writePrivate } from './layout';
import { planOf, usageDetail } from './offerings';
import { BackendProcess } from './process';
import { parseInfo, withRedis } from './resp';
import type { InstanceRecord } from './store';

const READY_TIMEOUT_MS = 15_000;

export class RedisBackend implements Backend {
  readonly label = 'redis' as const;
  readonly needsPort = true;
  readonly needsSid = true;
  private readonly binary = findBinary('redis-server');
  private readonly processes = new Map<string, BackendProcess>();

  constructor(private readonly ctx: BackendContext) {}

  unavailable(): string | undefined {
    return this.binary === undefined ? 'redis-server is not installed on this node (npm run setup installs it)' : undefined;
  }

  reservedPorts(): number[] {
    return [];
  }

  async start(): Promise<void> {
    ensureDir(this.ctx.layout.redis, 0o711);
  }

  async create(record: InstanceRecord): Promise<void> {
    const { layout, secrets, log } = this.ctx;
    const binary = this.binary;
    if (binary === undefined) throw new Error(this.unavailable());
    const { port, sid } = required(record);
    const owner = isRoot() ? { uid: sid, gid: sid } : undefined;
    const dir = layout.redisDir(record.id);
    ensureDir(layout.redis, 0o711);
    ensureDir(dir, 0o700, owner);
    const password = secrets.password(record.id);
    const memoryMb = planOf('redis', record.plan)?.limits.memoryMb ?? 64;
    // Written on every start, so that a new version's settings apply.
    writePrivate(join(dir, 'redis.conf'), config(this.ctx.host, port, dir, password, memoryMb), owner);
    let backend = this.processes.get(record.id);
    if (backend === undefined) {
      backend = new BackendProcess(`redis-server ${record.id}`, binary, [join(dir, 'redis.conf')], {
        uid: owner?.uid, gid: owner?.gid, stopSignal: 'SIGTERM', logFile: join(layout.logs, `redis-${record.id}.log`), cwd: dir,
        onRestart: () => {
          log.info('redis-server restarted; its data comes back from its append-only file', { id: record.id, port });
          this.ctx.restarted('redis');
        },
      }, log);
      this.processes.set(record.id, backend);
    }
    if (!backend.running) backend.start();
    const ready = await waitFor(() => this.ping(record, password), READY_TIMEOUT_MS);
    if (!ready.ok) {
      throw new Error(`redis-server on port ${port} did not answer within ${READY_TIMEOUT_MS / 1000} s (${backend.lastExit === undefined ? ready.error ?? 'no answer' : `it exited: ${backend.lastExit}`}; see ${join(layout.logs, `redis-${record.id}.log`)})`);
    }
  }

  private async ping(record: InstanceRecord, password: string): Promise<boolean> {
    return (await withRedis(this.ctx.host, record.port!, password, (redis) => redis.command('PING'), 2000)) === 'PONG';
  }

  async remove(record: InstanceRecord): Promise<void> {
    const { layout } = this.ctx;
    const backend = this.processes.get(record.id);
    this.processes.delete(record.id);
    await backend?.stop();
    // One a node before this one started and left running (it cannot have: it dies with its node; but a pid is cheap to check).
    for (const stray of processesNamed('redis-server')) {
      if (stray.cwd === layout.redisDir(record.id)) await killAndWait(stray.pid);
    }
    rmSync(layout.redisDir(record.id), { recursive: true, force: true });
    rmSync(join(layout.logs, `redis-${record.id}.log`), { force: true });
  }

  async bind(record: InstanceRecord): Promise<ServiceBindReply> {
    const { port } = required(record);
    const password = this.ctx.secrets.password(record.id);
    const host = this.ctx.host;
    return { credentials: { host, hostname: host, port, password, uri: `redis://:${password}@${uriHost(host, port)}` } };
  }

  /** Every bound app shares the instance's password (the contract's uri has no user): nothing of its own to revoke. */
  async unbind(): Promise<void> {}

  async health(record: InstanceRecord): Promise<Health> {
    const backend = this.processes.get(record.id);
    if (backend === undefined || !backend.running) {
      return { healthy: false, detail: `redis-server not running${backend?.lastExit === undefined ? '' : ` (${backend.lastExit}), restarting`}` };
    }
    try {
      const info = await withRedis(this.ctx.host, record.port!, this.ctx.secrets.password(record.id), (redis) => redis.command('INFO', 'memory'), 2000);
      const used = Number(parseInfo(String(info)).used_memory ?? 0);
      return { healthy: true, detail: `running, ${usageDetail(used, planOf('redis', record.plan)?.limits.memoryMb)} of memory` };
    } catch (error) {
      return { healthy: false, detail: `redis-server does not answer (${(error as Error).message})` };
    }
  }

  async sweep(mine: InstanceRecord[]): Promise<Stray[]> {
    const { layout } = this.ctx;
    const ids = new Set(mine.filter((r) => r.service === 'redis').map((r) => r.id));
    const ours = new Set([...this.processes.values()].map((p) => p.pid).filter((pid) => pid !== undefined));
    const strays: Stray[] = [];
    for (const found of processesNamed('redis-server')) {
      // Its working directory is its instance's: one under our redis/ that we do not run is ours, left over.
      if (found.cwd === undefined || !found.cwd.startsWith(layout.redis + '/') || ours.has(found.pid)) continue;
      await killAndWait(found.pid);
      strays.push({ service: 'redis', kind: 'redis-server process', name: `pid ${found.pid} in ${found.cwd}`, action: 'stopped' });
    }
    for (const name of listDir(layout.redis)) {
      if (!ids.has(name)) strays.push({ service: 'redis', kind: 'directory', name: layout.redisDir(name), action: 'reported' });
    }
    return strays;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.processes.values()].map((p) => p.stop()));
    this.processes.clear();
  }

  /** For tests: the pid of an instance's redis-server. */
  pidOf(id: string): number | undefined {
    return this.processes.get(id)?.pid;
  }
}

function required(record: InstanceRecord): { port: number; sid: number } {
  if (record.port === undefined || record.sid === undefined) throw new Error(`the record of ${record.id} has no port or id`);
  return { port: record.port, sid: record.sid };
}

function config(host: string, port: number, dir: string, password: string, memoryMb: number): string {
  return [
    '# Written by the Skiff services node; edits are lost.',
    `bind ${host}`,
    `port ${port}`,
    'daemonize no',
    // To stdout, which the node keeps in a log only root reads.
    'logfile ""',
    `dir ${JSON.stringify(dir)}`,
    `requirepass ${JSON.stringify(password)}`,
    'appendonly yes',
    'appendfsync everysec',
    // The append-only file is the persistence; no background snapshots besides.
    'save ""',
    `maxmemory ${memoryMb}mb`,
    'maxmemory-policy noeviction',
    // A tenant holds the password: no changing where files go, no modules, no DEBUG.
    'enable-protected-configs no',
    'enable-module-command no',
    'enable-debug-command no',
    '',
  ].join('\n');
}

async function killAndWait(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const gone = await waitFor(async () => !processesNamed('redis-server').some((p) => p.pid === pid), 10_000);
  if (!gone.ok) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
