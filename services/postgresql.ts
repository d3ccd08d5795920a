// The postgresql service: one PostgreSQL cluster per node, created with
// initdb under <data-dir>/services/postgresql the first time an instance
// needs it and run by the node itself (not Debian's service) as the
// `postgres` user, on a port of the node's --ports, listening on --host.
//
// Per instance, a database and a role of the same name (`svc_<id>`, NOLOGIN)
// that owns it; CONNECT is revoked from PUBLIC (here and on `postgres` and
// `template1`), so no other role can open the database. Per bound app, a
// login role (`svcb_<8 hex>_<id>`) that is a member of the owner role and
// acts as it on login (`SET role`), so that what one app creates another
// bound app can use, and unbinding drops that app's role alone. Passwords
// reach PostgreSQL only as SCRAM verifiers: not even its logs could hold one.
//
// The node speaks to the cluster as its superuser over a Unix socket in a
// 0700 directory of the postgres user (trust: only root and postgres reach
// it); the superuser cannot log in over TCP. A postgres that dies is
// restarted by the node and recovers from its WAL.

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { ServiceBindReply } from '../bus/platform';
import { findBinary, listDir, uriHost, waitFor, type Backend, type BackendContext, type Health, type Stray } from './backend';
import { ensureDir, isRoot, readJson, systemUser, writePrivate } from './layout';
import { planOf, usageDetail } from './offerings';
import { ident, literal, withPg, type PgConnection } from './pgwire';
import { scramVerifier } from './pgwire';
import { BackendProcess, setprivPrefix } from './process';
import type { InstanceRecord } from './store';

const READY_TIMEOUT_MS = 60_000;
const SUPERUSER = 'postgres';

/** The database, and its owner role, of an instance. */
export function databaseName(id: string): string {
  return `svc_${id}`;
}

/** A bound app's role on an instance: unique, and tied to the instance by its suffix. */
function bindingRoleName(id: string): string {
  return `svcb_${randomBytes(4).toString('hex')}_${id}`;
}

const BINDING_ROLE = /^svcb_[0-9a-f]{8}_(.+)$/;
const OWNER_ROLE = /^svc_(.+)$/;

export class PostgresqlBackend implements Backend {
  readonly label = 'postgresql' as const;
  readonly needsPort = false;
  readonly needsSid = false;
  private readonly bin = findPostgresBin();
  private readonly osUser = isRoot() ? systemUser('postgres') : undefined;
  private cluster: BackendProcess | undefined;
  private port: number | undefined;
  private starting: Promise<void> | undefined;

  constructor(private readonly ctx: BackendContext) {
    this.port = readJson<{ port?: number }>(ctx.layout.postgresqlState)?.port;
  }

  unavailable(): string | undefined {
    if (this.bin === undefined) return 'PostgreSQL is not installed on this node (npm run setup installs it)';
    if (isRoot() && this.osUser === undefined) return 'there is no postgres user on this node to run PostgreSQL as (the postgresql package creates it)';
    return undefined;
  }

  reservedPorts(): number[] {
    return this.port === undefined ? [] : [this.port];
  }

  private get dataDir(): string {
    return join(this.ctx.layout.postgresql, 'data');
  }

  private get socketDir(): string {
    return join(this.ctx.layout.postgresql, 'run');
  }

  /** The cluster runs with the node once it exists, so that sweeps can look into it. */
  async start(mine: InstanceRecord[]): Promise<void> {
    if (existsSync(join(this.dataDir, 'PG_VERSION')) || mine.some((r) => r.service === 'postgresql')) await this.ensureCluster();
  }

  private admin(database = 'postgres') {
    return { path: join(this.socketDir, `.s.PGSQL.${this.port}`), user: SUPERUSER, database, timeoutMs: 10_000 };
  }

  private asAdmin<T>(work: (pg: PgConnection) => Promise<T>, database?: string): Promise<T> {
    return withPg(this.admin(database), work);
  }

  /** Creates the cluster when missing, starts it when not running, and waits until it answers. */
  ensureCluster(): Promise<void> {
    if (this.cluster?.running && this.starting === undefined) return Promise.resolve();
    this.starting ??= this.bringUp().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async bringUp(): Promise<void> {
    const why = this.unavailable();
    if (why !== undefined) throw new Error(why);
    const { layout, log } = this.ctx;
    const owner = this.osUser;
    if (this.port === undefined) {
      this.port = await this.ctx.allocatePort();
      writePrivate(layout.postgresqlState, JSON.stringify({ port: this.port }) + '\n');
    }
    ensureDir(layout.postgresql, 0o700, owner);
    ensureDir(this.socketDir, 0o700, owner);
    if (!existsSync(join(this.dataDir, 'PG_VERSION'))) await this.initdb();
    writePrivate(join(this.dataDir, 'pg_hba.conf'), HBA, owner);
    await this.stopLeftover();
    if (this.cluster === undefined) {
      this.cluster = new BackendProcess('postgres', join(this.bin!, 'postgres'), [
        '-D', this.dataDir,
        '-c', `port=${this.port}`,
        '-c', `listen_addresses=${this.ctx.host}`,
        '-c', `unix_socket_directories=${this.socketDir}`,
        '-c', 'unix_socket_permissions=0700',
        '-c', 'max_connections=200',
        '-c', 'shared_buffers=32MB',
        '-c', 'password_encryption=scram-sha-256',
        // Statements stay out of its log even when they fail.
        '-c', 'log_min_error_statement=panic',
      ], {
        uid: owner?.uid, gid: owner?.gid, stopSignal: 'SIGINT', logFile: join(layout.logs, 'postgresql.log'), cwd: layout.postgresql,
        onRestart: () => {
          log.info('postgres restarted; it recovers from its WAL', { port: this.port });
          this.ctx.restarted('postgresql');
        },
      }, log);
    }
    if (!this.cluster.running) this.cluster.start();
    const ready = await waitFor(() => this.asAdmin(async (pg) => (await pg.rows('SELECT 1'))[0]?.[0] === '1'), READY_TIMEOUT_MS, 200);
    if (!ready.ok) {
      throw new Error(`the PostgreSQL cluster did not answer within ${READY_TIMEOUT_MS / 1000} s (${this.cluster.lastExit === undefined ? ready.error ?? 'no answer' : `postgres exited: ${this.cluster.lastExit}`}; see ${join(layout.logs, 'postgresql.log')})`);
    }
    // Roles open only the databases granted to them.
    await this.asAdmin((pg) => pg.query('REVOKE CONNECT ON DATABASE postgres FROM PUBLIC; REVOKE CONNECT ON DATABASE template1 FROM PUBLIC'));
    log.info('PostgreSQL cluster running', { port: this.port, data: this.dataDir });
  }

  /** initdb into a temporary directory, renamed once complete: a node stopped half-way starts over. */
  private async initdb(): Promise<void> {
    const { layout, log } = this.ctx;
    const temp = join(layout.postgresql, 'data.init');
    rmSync(temp, { recursive: true, force: true });
    log.info('creating the PostgreSQL cluster (initdb)', { data: this.dataDir });
    const owner = this.osUser;
    // As postgres, and ended with the node: a node killed half-way must not leave an initdb writing.
    const [command, ...args] = [
      ...setprivPrefix('SIGKILL', owner?.uid, owner?.gid), join(this.bin!, 'initdb'),
      '-D', temp, '-U', SUPERUSER, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-instructions',
    ];
    if (owner !== undefined && command !== 'setpriv') throw new Error('setpriv (util-linux) is needed to run initdb as postgres');
    const output = await run(command!, args, layout.postgresql);
    if (output.code !== 0) throw new Error(`initdb failed (exit ${output.code}): ${output.text.trim().split('\n').slice(-2).join(' | ')}`);
    rmSync(this.dataDir, { recursive: true, force: true });
    renameSync(temp, this.dataDir);
  }

  /**
   * A postgres still running on this cluster that the node did not start
   * (a node before this one, killed in a way its children outlived) holds
   * the cluster's lock: it is stopped first, its data dir tells it is ours.
   */
  private async stopLeftover(): Promise<void> {
    if (this.cluster?.running) return;
    let pid: number;
    try {
      pid = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return;
    }
    if (!Number.isInteger(pid) || pid <= 0) return;
    let cwd: string;
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      return;
    }
    if (cwd !== this.dataDir) return;
    this.ctx.log.warn('a postgres the node did not start runs the cluster; stopping it', { pid });
    try {
      process.kill(pid, 'SIGINT');
    } catch {
      return;
    }
    const gone = await waitFor(async () => !existsSync(`/proc/${pid}`), 15_000, 100);
    if (!gone.ok) process.kill(pid, 'SIGKILL');
  }

  async create(record: InstanceRecord): Promise<void> {
    await this.ensureCluster();
    const name = databaseName(record.id);
    const connections = planOf('postgresql', record.plan)?.limits.connections ?? 20;
    await this.asAdmin(async (pg) => {
      await pg.query(`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${literal(name)}) THEN CREATE ROLE ${ident(name)} NOLOGIN; END IF; END $$`);
      if ((await pg.rows(`SELECT 1 FROM pg_database WHERE datname = ${literal(name)}`)).length === 0) {
        // Alone: CREATE DATABASE cannot run inside the transaction a multi-statement query is.
        await pg.query(`CREATE DATABASE ${ident(name)} OWNER ${ident(name)} TEMPLATE template0 ENCODING 'UTF8' CONNECTION LIMIT ${connections}`);
      }
      await pg.query(
        `REVOKE ALL ON DATABASE ${ident(name)} FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE ${ident(name)} TO ${ident(name)}; ` +
          `ALTER DATABASE ${ident(name)} CONNECTION LIMIT ${connections}`,
      );
    });
  }

  async remove(record: InstanceRecord): Promise<void> {
    // Nothing was ever created where the cluster never was.
    if (!existsSync(join(this.dataDir, 'PG_VERSION'))) return;
    await this.ensureCluster();
    const name = databaseName(record.id);
    await this.asAdmin(async (pg) => {
      await pg.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`);
      const roles = (await pg.rows('SELECT rolname FROM pg_roles')).map((row) => row[0]!).filter((role) => role === name || BINDING_ROLE.exec(role)?.[1] === record.id);
      // Binding roles first: they are members of the owner role.
      for (const role of roles.sort((a, b) => (a === name ? 1 : b === name ? -1 : 0))) await this.dropRole(pg, role);
    });
  }

  private async dropRole(pg: PgConnection, role: string): Promise<void> {
    await pg.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${literal(role)}`);
    await pg.query(`DROP ROLE IF EXISTS ${ident(role)}`);
  }

  async bind(record: InstanceRecord, app: string): Promise<ServiceBindReply> {
    await this.ensureCluster();
    const name = databaseName(record.id);
    const { username, password } = this.ctx.secrets.binding(record.id, app, () => bindingRoleName(record.id));
    await this.asAdmin((pg) =>
      pg.query(
        `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${literal(username)}) THEN CREATE ROLE ${ident(username)} LOGIN; END IF; END $$; ` +
          `ALTER ROLE ${ident(username)} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${literal(scramVerifier(password))}; ` +
          `GRANT ${ident(name)} TO ${ident(username)}; ` +
          // What the app creates belongs to the instance, not to this binding: other bound apps use it, unbinding keeps it.
          `ALTER ROLE ${ident(username)} SET role = ${literal(name)}`,
      ),
    );
    const host = this.ctx.host;
    const port = this.port!;
    return {
      credentials: {
        host, hostname: host, port, name, username, user: username, password,
        uri: `postgres://${username}:${password}@${uriHost(host, port)}/${name}`,
      },
    };
  }

  async unbind(record: InstanceRecord, app: string): Promise<void> {
    const binding = this.ctx.secrets.peekBinding(record.id, app);
    if (binding === undefined) return;
    await this.ensureCluster();
    const name = databaseName(record.id);
    await this.asAdmin(async (pg) => {
      const exists = (await pg.rows(`SELECT 1 FROM pg_roles WHERE rolname = ${literal(binding.username)}`)).length > 0;
      if (!exists) return;
      await pg.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${literal(binding.username)}`);
      // Anything it made as itself (after RESET ROLE) goes to the instance.
      if ((await pg.rows(`SELECT 1 FROM pg_database WHERE datname = ${literal(name)}`)).length > 0) {
        await withPg(this.admin(name), (db) => db.query(`REASSIGN OWNED BY ${ident(binding.username)} TO ${ident(name)}; DROP OWNED BY ${ident(binding.username)}`));
      }
      await pg.query(`DROP ROLE IF EXISTS ${ident(binding.username)}`);
    });
    this.ctx.secrets.forgetBinding(record.id, app);
  }

  async health(record: InstanceRecord): Promise<Health> {
    if (this.cluster === undefined || !this.cluster.running) {
      return { healthy: false, detail: `the PostgreSQL cluster is not running${this.cluster?.lastExit === undefined ? '' : ` (${this.cluster.lastExit}), restarting`}` };
    }
    try {
      const name = databaseName(record.id);
      const rows = await this.asAdmin((pg) => pg.rows(`SELECT pg_database_size(datname) FROM pg_database WHERE datname = ${literal(name)}`));
      if (rows.length === 0) return { healthy: false, detail: 'its database is missing' };
      return { healthy: true, detail: `running, ${usageDetail(Number(rows[0]![0]), planOf('postgresql', record.plan)?.limits.sizeMb)}` };
    } catch (error) {
      return { healthy: false, detail: `PostgreSQL does not answer (${(error as Error).message})` };
    }
  }

  async sweep(mine: InstanceRecord[]): Promise<Stray[]> {
    if (this.cluster === undefined || !this.cluster.running) return [];
    const records = new Map(mine.filter((r) => r.service === 'postgresql').map((r) => [r.id, r]));
    const secrets = this.ctx.secrets;
    const strays: Stray[] = [];
    await this.asAdmin(async (pg) => {
      const databases = new Set((await pg.rows("SELECT datname FROM pg_database WHERE datname LIKE 'svc\\_%'")).map((row) => row[0]!));
      for (const database of databases) {
        const id = OWNER_ROLE.exec(database)?.[1];
        if (id !== undefined && !records.has(id)) strays.push({ service: 'postgresql', kind: 'database', name: database, action: 'reported' });
      }
      for (const [role] of await pg.rows("SELECT rolname FROM pg_roles WHERE rolname LIKE 'svc%'")) {
        const binding = BINDING_ROLE.exec(role!);
        const owner = binding === null ? OWNER_ROLE.exec(role!) : null;
        const id = binding?.[1] ?? owner?.[1];
        if (id === undefined) continue;
        if (binding !== null) {
          // A login role no binding names lets someone in who is no longer bound: it goes (what it owned goes to the instance).
          const record = records.get(id);
          const named = record !== undefined && Object.keys(record.bindings).some((app) => secrets.peekBinding(id, app)?.username === role);
          if (named) continue;
          if (databases.has(databaseName(id))) {
            await withPg(this.admin(databaseName(id)), (db) => db.query(`REASSIGN OWNED BY ${ident(role!)} TO ${ident(databaseName(id))}; DROP OWNED BY ${ident(role!)}`)).catch(() => {});
          }
          await this.dropRole(pg, role!);
          strays.push({ service: 'postgresql', kind: 'login role', name: role!, action: 'removed' });
        } else if (!records.has(id)) {
          // The owner of a stray database goes with it, by hand; one without a database holds nothing.
          if (databases.has(role!)) {
            strays.push({ service: 'postgresql', kind: 'role', name: role!, action: 'reported' });
          } else {
            await this.dropRole(pg, role!).catch(() => {});
            strays.push({ service: 'postgresql', kind: 'role', name: role!, action: 'removed' });
          }
        }
      }
    });
    return strays;
  }

  async stop(): Promise<void> {
    await this.starting?.catch(() => {});
    await this.cluster?.stop(20_000);
  }

  /** For tests: the postmaster's pid and the cluster's port. */
  get clusterPid(): number | undefined {
    return this.cluster?.pid;
  }
  get clusterPort(): number | undefined {
    return this.port;
  }
}

// Only the node (root or postgres, through the 0700 socket directory) as the
// superuser; everyone else over TCP with a password, never the superuser.
const HBA = [
  '# Written by the Skiff services node; edits are lost.',
  `local all ${SUPERUSER} trust`,
  `host all ${SUPERUSER} 0.0.0.0/0 reject`,
  `host all ${SUPERUSER} ::/0 reject`,
  'host all all 0.0.0.0/0 scram-sha-256',
  'host all all ::/0 scram-sha-256',
  '',
].join('\n');

/** The directory of Debian's newest PostgreSQL (/usr/lib/postgresql/<version>/bin), else the one on PATH with initdb. */
function findPostgresBin(): string | undefined {
  const versions = listDir('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const dir = join('/usr/lib/postgresql', version, 'bin');
    if (existsSync(join(dir, 'postgres')) && existsSync(join(dir, 'initdb'))) return dir;
  }
  const initdb = findBinary('initdb');
  return initdb === undefined ? undefined : join(initdb, '..');
}

function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text = (text + chunk.toString()).slice(-4000)));
    child.stderr.on('data', (chunk: Buffer) => (text = (text + chunk.toString()).slice(-4000)));
    child.on('error', (error) => resolve({ code: -1, text: error.message }));
    child.on('close', (code) => resolve({ code, text }));
  });
}
