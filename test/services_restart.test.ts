// The services role stopped half-way: killed (SIGKILL) in the middle of a
// provisioning, a deprovisioning, a binding, or found at its start with
// the record of a step that a stop cut short. Its backends end with it
// (nothing runs that no node watches), and its next start finishes what
// the record says was under way: nothing orphaned, nothing half-made. The
// sweep stops stray processes, removes a login role no binding names, and
// reports (without touching) directories and databases no record names.

import t from 'tap';
import type tap from 'tap';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceSubjects, type PostgresqlCredentials, type RedisCredentials } from '../bus/platform';
import { withPg } from '../services/pgwire';
import { withRedis } from '../services/resp';
import type { InstanceRecord } from '../services/store';
import { eventually, freePort, isAlive, spawnTracked } from './harness';
import { processesIn, startServicesRig, type ServicesRig } from './services_harness';

const hasRedis = existsSync('/usr/bin/redis-server');
const hasPostgres = existsSync('/usr/lib/postgresql');
const isRoot = process.getuid?.() === 0;

const provision = (id: string, service: string) => ({ id, service, plan: 'free', name: id, owner: 'owner@example.com' });

/** SIGKILLs the role as soon as the record of `id` shows `when`; resolves once it is dead. */
async function killWhen(rig: ServicesRig, id: string, when: (record: InstanceRecord) => boolean): Promise<{ killed: Promise<InstanceRecord> }> {
  const watch = await rig.kv.watch({ key: id });
  const killed = (async () => {
    for await (const entry of watch) {
      if (entry.operation !== 'PUT') continue;
      const record = JSON.parse(new TextDecoder().decode(entry.value)) as InstanceRecord;
      if (!when(record)) continue;
      await rig.role.kill('SIGKILL');
      watch.stop();
      return record;
    }
    throw new Error(`the watch of ${id} ended before the step was seen`);
  })();
  return { killed };
}

/** The backends die with the role (a parent-death signal): nothing keeps running that no node watches. */
async function nothingRunsIn(t: tap.Test, rig: ServicesRig, what: string): Promise<void> {
  await eventually(() => processesIn(rig.dataDir).length === 0, `${what}: the backends to end with the role`, 20_000).catch(() => {});
  t.same(processesIn(rig.dataDir).map((p) => `${p.pid} ${p.comm}`), [], `${what}: no backend outlives the role`);
}

const pgAdmin = (rig: ServicesRig) => {
  const port = (JSON.parse(readFileSync(join(rig.dataDir, 'services', 'postgresql.json'), 'utf8')) as { port: number }).port;
  return { path: join(rig.dataDir, 'services', 'postgresql', 'run', `.s.PGSQL.${port}`), user: 'postgres', database: 'postgres' };
};

t.test('killed while provisioning postgresql (during initdb): the next start finishes it', { skip: !hasPostgres && 'PostgreSQL is not installed' }, async (t) => {
  const rig = await startServicesRig(t);
  const id = 'pg-cut';
  const { killed } = await killWhen(rig, id, (r) => r.state === 'provisioning');
  const asked = rig.ask(ServiceSubjects.provision, provision(id, 'postgresql'), 5000).catch((error: Error) => error);
  const record = await killed;
  t.match(record, { state: 'provisioning', node: rig.node }, 'killed after the intent was recorded');
  t.type(await asked, Error, 'the request got no answer');
  await nothingRunsIn(t, rig, 'killed during initdb');
  t.equal((await rig.record(id))?.state, 'provisioning', 'the record still says where it stopped');

  await rig.role.start();
  t.match(rig.role.log(), /finishing a provisioning that a stop cut short id=pg-cut service=postgresql/);
  t.equal((await rig.record(id))?.state, 'ready', 'finished at the start');
  t.same(await rig.ask(ServiceSubjects.provision, provision(id, 'postgresql')), { ok: true, node: rig.node }, 'asked again, it answers ok');
  const { credentials } = await rig.ask<{ credentials: PostgresqlCredentials }>(ServiceSubjects.bind(rig.node), { id, app: 'app-1' });
  t.same(await withPg({ host: credentials.host, port: credentials.port, user: credentials.username, password: credentials.password, database: credentials.name }, (pg) => pg.rows('SELECT 1')), [['1']], 'its database works');
  t.same(await withPg(pgAdmin(rig), (pg) => pg.rows("SELECT datname FROM pg_database WHERE datname LIKE 'svc%'")), [['svc_pg-cut']], 'one database, no half-made one');
  t.same(readdirSync(join(rig.dataDir, 'services', 'postgresql')).sort(), ['data', 'run'], 'the cut initdb\'s directory is gone');

  // Killed while binding.
  const bound = await killWhen(rig, id, (r) => r.bindings['app-2']?.state === 'binding');
  void rig.ask(ServiceSubjects.bind(rig.node), { id, app: 'app-2' }, 5000).catch(() => {});
  t.equal((await bound.killed).bindings['app-2']?.state, 'binding');
  await nothingRunsIn(t, rig, 'killed while binding');
  await rig.role.start();
  t.equal((await rig.record(id))?.bindings['app-2']?.state, 'bound', 'the binding was finished at the start');
  const second = await rig.ask<{ credentials: PostgresqlCredentials }>(ServiceSubjects.bind(rig.node), { id, app: 'app-2' });
  t.same(await withPg({ host: second.credentials.host, port: second.credentials.port, user: second.credentials.username, password: second.credentials.password, database: second.credentials.name }, (pg) => pg.rows('SELECT current_user')), [['svc_pg-cut']], 'and works');

  t.same(await rig.ask(ServiceSubjects.deprovision(rig.node), { id }), { ok: true });
  t.same(await withPg(pgAdmin(rig), (pg) => pg.rows("SELECT rolname FROM pg_roles WHERE rolname LIKE 'svc%' UNION ALL SELECT datname FROM pg_database WHERE datname LIKE 'svc%'")), [], 'nothing of it is left');
});

t.test('killed while deprovisioning redis: the next start finishes it', { skip: !hasRedis && 'redis-server is not installed' }, async (t) => {
  const rig = await startServicesRig(t);
  const id = 'redis-cut';
  t.same(await rig.ask(ServiceSubjects.provision, provision(id, 'redis')), { ok: true, node: rig.node });
  const { credentials } = await rig.ask<{ credentials: RedisCredentials }>(ServiceSubjects.bind(rig.node), { id, app: 'app-1' });
  await withRedis(credentials.host, credentials.port, credentials.password, (redis) => redis.command('SET', 'k', 'v'));
  const { killed } = await killWhen(rig, id, (r) => r.state === 'deprovisioning');
  void rig.ask(ServiceSubjects.deprovision(rig.node), { id }, 5000).catch(() => {});
  t.equal((await killed).state, 'deprovisioning');
  await nothingRunsIn(t, rig, 'killed while deprovisioning');

  await rig.role.start();
  t.match(rig.role.log(), /finishing a deprovisioning that a stop cut short id=redis-cut service=redis/);
  t.equal(await rig.record(id), undefined, 'its record is gone');
  t.notOk(existsSync(join(rig.dataDir, 'services', 'redis', id)), 'its directory is gone');
  t.notOk(existsSync(join(rig.dataDir, 'services', 'secrets', `${id}.json`)), 'its password is gone');
  t.same(processesIn(rig.dataDir), [], 'no redis-server runs');
  t.same(await rig.ask(ServiceSubjects.deprovision(rig.node), { id }), { ok: true }, 'asked again, it answers ok');
  t.notMatch(rig.role.log(), /stray/, 'the sweep finds nothing');
});

t.test('records of cut steps found at the start: provisioning, deprovisioning, unbinding are finished', { skip: !hasRedis && 'redis-server is not installed' }, async (t) => {
  const rig = await startServicesRig(t);
  // Made the ordinary way, to be cut afterwards.
  t.same(await rig.ask(ServiceSubjects.provision, provision('files-cut', 'filesystem')), { ok: true, node: rig.node });
  t.same(await rig.ask(ServiceSubjects.provision, provision('redis-bound', 'redis')), { ok: true, node: rig.node });
  await rig.ask(ServiceSubjects.bind(rig.node), { id: 'redis-bound', app: 'app-gone' });
  await rig.role.kill('SIGTERM');

  const now = Math.floor(Date.now() / 1000);
  const put = (record: InstanceRecord) => rig.kv.put(record.id, new TextEncoder().encode(JSON.stringify(record)));
  // Killed right after recording the intent: a port and a uid taken, nothing made.
  const port = await freePort();
  await put({ id: 'redis-cut', service: 'redis', plan: 'free', name: 'r', owner: 'o@x', node: rig.node, state: 'provisioning', port, sid: 2_299_001, bindings: {}, created: now, updated: now });
  // Killed after marking a deprovisioning, before removing anything.
  const files = (await rig.record('files-cut'))!;
  await put({ ...files, state: 'deprovisioning' });
  // Killed after marking an unbinding.
  const bound = (await rig.record('redis-bound'))!;
  await put({ ...bound, bindings: { 'app-gone': { ...bound.bindings['app-gone']!, state: 'unbinding' } } });

  await rig.role.start();
  const made = await rig.record('redis-cut');
  t.match(made, { state: 'ready', port, sid: 2_299_001 }, 'the provisioning was finished with what it had taken');
  const { credentials } = await rig.ask<{ credentials: RedisCredentials }>(ServiceSubjects.bind(rig.node), { id: 'redis-cut', app: 'app-1' });
  t.equal(credentials.port, port);
  t.equal(await withRedis(credentials.host, credentials.port, credentials.password, (redis) => redis.command('PING')), 'PONG', 'its redis-server runs');
  if (isRoot) t.same(processesIn(join(rig.dataDir, 'services', 'redis', 'redis-cut')).map((p) => p.uid), [2_299_001], 'as the uid it had taken');
  t.equal(await rig.record('files-cut'), undefined, 'the deprovisioning was finished');
  t.notOk(existsSync(join(rig.dataDir, 'services', 'filesystem', 'files-cut')));
  t.same((await rig.record('redis-bound'))!.bindings, {}, 'the unbinding was finished');
  t.notMatch(rig.role.log(), /stray/, 'the sweep finds nothing');
});

t.test('the sweep: stray processes stopped, a login role no binding names removed, directories and databases reported', async (t) => {
  const rig = await startServicesRig(t);
  const services = join(rig.dataDir, 'services');
  if (hasPostgres) {
    t.same(await rig.ask(ServiceSubjects.provision, provision('pg-live', 'postgresql')), { ok: true, node: rig.node });
    // As if left by a lost record: a database, and a login role into a live instance.
    await withPg(pgAdmin(rig), (pg) => pg.query('CREATE ROLE "svc_ghost" NOLOGIN'));
    await withPg(pgAdmin(rig), (pg) => pg.query('CREATE DATABASE "svc_ghost" OWNER "svc_ghost"'));
    await withPg(pgAdmin(rig), (pg) => pg.query(`CREATE ROLE "svcb_deadbeef_pg-live" LOGIN PASSWORD 'x'; GRANT "svc_pg-live" TO "svcb_deadbeef_pg-live"`));
  }
  mkdirSync(join(services, 'filesystem', 'ghost-files'));
  let ghost: ReturnType<typeof spawnTracked> | undefined;
  if (hasRedis) {
    // A redis-server working in our redis/ directory that no node runs.
    const dir = join(services, 'redis', 'ghost-redis');
    mkdirSync(dir, { recursive: true });
    ghost = spawnTracked('redis-server', ['--port', String(await freePort()), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore', cwd: dir });
    await eventually(() => processesIn(dir).length === 1, 'the stray redis-server to run');
  }
  await rig.role.kill('SIGTERM');
  await rig.role.start();
  const log = rig.role.log();
  t.match(log, /WARN services: stray: no service instance names it; left for an operator \(it may hold data\) service=filesystem kind=directory name=\S+\/filesystem\/ghost-files/);
  t.ok(existsSync(join(services, 'filesystem', 'ghost-files')), 'a directory is only reported: it may hold someone\'s data');
  if (hasRedis) {
    t.match(log, /WARN services: stray: no service instance names it; stopped service=redis kind="redis-server process"/);
    await eventually(() => !isAlive(ghost!.pid!), 'the stray redis-server to end', 10_000);
    t.pass('a stray redis-server is stopped');
  }
  if (hasPostgres) {
    t.match(log, /service=postgresql kind=database name=svc_ghost/);
    t.match(log, /stray: no service instance names it; removed service=postgresql kind="login role" name=svcb_deadbeef_pg-live/);
    const left = await withPg(pgAdmin(rig), (pg) => pg.rows("SELECT rolname FROM pg_roles WHERE rolname LIKE 'svc%' ORDER BY 1"));
    t.same(left, [['svc_ghost'], ['svc_pg-live']], 'the login role no binding names is gone (it let someone in); the stray database\'s owner stays with it');
  }
  // Reported once per run, not at every sweep.
  const reports = (log.match(/ghost-files/g) ?? []).length;
  t.equal(reports, 1);
});
