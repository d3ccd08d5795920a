// The services role as it runs (`skiff services-node`, a real nats-server
// with the platform's permissions, real redis-server and postgres): each
// service provisioned, bound, used with the credentials it gives, its
// backend killed and its data back, unbound and deprovisioned to nothing;
// every request twice, answering the same; one app's PostgreSQL
// credentials open no other instance's database; no credential in the
// role's log, its records or a command line.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { requestAll } from '../bus/connection';
import type { ComponentAnnounce } from '../bus/messages';
import { Subjects } from '../bus/subjects';
import { ServiceSubjects, type PostgresqlCredentials, type RedisCredentials, type ServiceBindReply } from '../bus/platform';
import { PgError, withPg } from '../services/pgwire';
import { withRedis } from '../services/resp';
import { eventually, isAlive, metricSample } from './harness';
import { processesIn, startServicesRig, type ServicesRig } from './services_harness';

const isRoot = process.getuid?.() === 0;
const hasRedis = ['/usr/bin/redis-server', '/usr/sbin/redis-server'].some(existsSync);
const hasPostgres = existsSync('/usr/lib/postgresql') || spawnSync('sh', ['-c', 'command -v initdb'], { stdio: 'ignore' }).status === 0;

const provision = (id: string, service: string, plan = 'free') => ({ id, service, plan, name: `${service}-${id}`, owner: 'owner@example.com' });

/** Every password the role handed out, to look for where it must not be. */
const handedOut: string[] = [];
/** The bucket's records while instances were bound. */
const snapshots: string[] = [];

async function snapshotBucket(rig: ServicesRig): Promise<void> {
  for await (const key of await rig.kv.keys()) {
    const entry = await rig.kv.get(key);
    if (entry !== null) snapshots.push(new TextDecoder().decode(entry.value));
  }
}

async function bind<C>(rig: ServicesRig, id: string, app: string, appUid = 2_000_123): Promise<{ credentials: C; gid?: number }> {
  const reply = await rig.ask<ServiceBindReply & { error?: string }>(ServiceSubjects.bind(rig.node), { id, app, app_uid: appUid });
  if (reply.error !== undefined) throw new Error(reply.error);
  const password = (reply.credentials as { password?: string }).password;
  if (password !== undefined) handedOut.push(password);
  return reply as { credentials: C; gid?: number };
}

function pgAs(credentials: PostgresqlCredentials, database = credentials.name) {
  return { host: credentials.host, port: credentials.port, user: credentials.username, password: credentials.password, database };
}

/** As the cluster's superuser, over its private socket (root reaches it). */
function pgAdmin(rig: ServicesRig, database = 'postgres') {
  const port = (JSON.parse(readFileSync(join(rig.dataDir, 'services', 'postgresql.json'), 'utf8')) as { port: number }).port;
  return { path: join(rig.dataDir, 'services', 'postgresql', 'run', `.s.PGSQL.${port}`), user: 'postgres', database };
}

t.test('services node', async (t) => {
  const rig = await startServicesRig(t, { metrics: true });

  await t.test('its own /metrics: behind basic auth, announced, nothing counted yet', async (t) => {
    t.equal((await fetch(rig.metrics!.url)).status, 401, 'no figures without credentials');
    const text = await rig.scrape();
    t.match(text, /^process_resident_memory_bytes \d/m, 'its process');
    t.equal(metricSample(text, 'skiff_services_operations_total', { operation: 'provision', service: 'filesystem', result: 'ok' }), 0, 'no provision yet');
    t.equal(metricSample(text, 'skiff_services_instances', { service: 'filesystem', health: 'healthy' }), 0, 'no instance yet');
    const announced = await requestAll<ComponentAnnounce>(rig.operator, Subjects.componentDiscover, {}, { windowMs: 1000 });
    const node = announced.find((a) => a.type === 'ServicesNode');
    t.equal(node?.metrics, new URL(rig.metrics!.url).host, 'the node announces where its metrics are');
    t.equal(node?.credentials?.[0], 'metrics', 'and with which credentials');
  });

  await t.test('offerings: the three services and their plans', async (t) => {
    const reply = await rig.ask<{ services: Array<{ label: string; plans: Array<{ name: string }> }> }>(ServiceSubjects.offerings, {});
    t.same(reply.services.map((s) => s.label), ['redis', 'postgresql', 'filesystem'].filter((l) => (l === 'redis' ? hasRedis : l === 'postgresql' ? hasPostgres : true)));
    for (const service of reply.services) t.same(service.plans.map((p) => p.name), ['free', 'large'], `${service.label}: free and large`);
  });

  await t.test('bad requests get one clear line and a code', async (t) => {
    t.same(await rig.ask(ServiceSubjects.provision, provision('x1', 'mongodb')), { error: 'unknown service "mongodb" (services: redis, postgresql, filesystem)', code: 'unknown_service' });
    t.same(await rig.ask(ServiceSubjects.provision, provision('x1', 'filesystem', 'huge')), { error: 'unknown plan "huge" of filesystem (plans: free, large)', code: 'unknown_plan' });
    const badId = await rig.ask<{ error: string; code: string }>(ServiceSubjects.provision, provision('../x', 'filesystem'));
    t.equal(badId.code, 'bad_request');
    t.match(badId.error, /^bad request on services\.provision: id must be 1-40 lowercase letters/);
    t.same(await rig.ask(ServiceSubjects.bind(rig.node), { id: 'nope', app: 'a1' }), { error: 'no service instance nope', code: 'not_found' });
    t.same(await rig.ask(ServiceSubjects.deprovision(rig.node), { id: 'nope' }), { ok: true }, 'deprovisioning an unknown id is done already');
    t.same(await rig.ask(ServiceSubjects.unbind(rig.node), { id: 'nope', app: 'a1' }), { ok: true }, 'so is unbinding');
    t.same(await rig.ask(ServiceSubjects.status(rig.node), { ids: ['nope'] }), { instances: [{ id: 'nope', healthy: false, detail: 'no such service instance' }] });
    const text = await rig.scrape();
    t.equal(metricSample(text, 'skiff_services_operations_total', { operation: 'provision', result: 'unknown_service' }), 1, 'the refusals are counted by code');
    t.equal(metricSample(text, 'skiff_services_operations_total', { operation: 'provision', service: 'filesystem', result: 'unknown_plan' }), 1);
    t.equal(metricSample(text, 'skiff_services_operations_total', { operation: 'bind', result: 'not_found' }), 1);
  });

  await t.test('redis: a redis-server of its own, persisted, restarted when it dies, gone when deprovisioned', { skip: !hasRedis && 'redis-server is not installed (npm run setup)' }, async (t) => {
    const id = 'redis-one';
    t.same(await rig.ask(ServiceSubjects.provision, provision(id, 'redis')), { ok: true, node: rig.node });
    const dir = join(rig.dataDir, 'services', 'redis', id);
    const servers = () => processesIn(dir).filter((p) => p.comm === 'redis-server');
    t.equal(servers().length, 1, 'one redis-server runs in the instance\'s directory');
    t.same(await rig.ask(ServiceSubjects.provision, provision(id, 'redis')), { ok: true, node: rig.node }, 'provisioning again answers the same');
    t.equal(servers().length, 1, '...without a second redis-server');
    const record = (await rig.record(id))!;
    t.match(record, { id, service: 'redis', plan: 'free', node: rig.node, state: 'ready' });
    const [server] = servers();
    if (isRoot) {
      t.equal(server!.uid, record.sid, 'it runs as the instance\'s own uid');
      t.equal(statSync(dir).uid, record.sid);
      t.equal(statSync(dir).mode & 0o777, 0o700, 'its directory is its own alone');
    }

    const { credentials } = await bind<RedisCredentials>(rig, id, 'app-a');
    t.match(credentials, { host: '127.0.0.1', hostname: '127.0.0.1', port: record.port });
    t.equal(credentials.uri, `redis://:${credentials.password}@127.0.0.1:${record.port}`);
    t.same((await bind<RedisCredentials>(rig, id, 'app-a')).credentials, credentials, 'binding again gives the same credentials');
    t.same((await bind<RedisCredentials>(rig, id, 'app-b')).credentials, credentials, 'every bound app shares the instance');
    t.notOk(readFileSync(`/proc/${server!.pid}/cmdline`, 'utf8').includes(credentials.password), 'the password is on no command line');
    await snapshotBucket(rig);
    await t.rejects(withRedis(credentials.host, credentials.port, 'wrong', (redis) => redis.command('PING')), /WRONGPASS/, 'the password is needed');
    await withRedis(credentials.host, credentials.port, credentials.password, async (redis) => {
      await redis.command('SET', 'counter', '41');
      t.equal(await redis.command('INCR', 'counter'), 42);
      t.equal(await redis.command('CONFIG', 'GET', 'maxmemory').then((v) => (v as string[])[1]), String(64 * 1024 * 1024), 'the free plan\'s memory');
      await t.rejects(redis.command('CONFIG', 'SET', 'dir', '/tmp'), /protected config/, 'a tenant cannot move where it writes its files');
    });
    const before = (await rig.ask<{ instances: Array<{ healthy: boolean; detail: string }> }>(ServiceSubjects.status(rig.node), { ids: [id] })).instances[0]!;
    t.equal(before.healthy, true);
    t.match(before.detail, /^running, .* of 64 MB of memory$/);

    process.kill(server!.pid, 'SIGKILL');
    await eventually(() => servers().length === 1 && servers()[0]!.pid !== server!.pid, 'the node to start a new redis-server', 10_000);
    const read = () => withRedis(credentials.host, credentials.port, credentials.password, (redis) => redis.command('GET', 'counter')).catch(() => 'no answer');
    await eventually(async () => (await read()) !== 'no answer', 'the new redis-server to answer', 10_000);
    t.equal(await read(), '42', 'killed with SIGKILL, it comes back with its data (append-only file)');
    t.match(rig.role.log(), /WARN services: redis-server redis-one exited; restarting signal=SIGKILL/);
    t.equal(metricSample(await rig.scrape(), 'skiff_services_backend_restarts_total', { service: 'redis' }), 1, 'the restart is counted');
    await eventually(async () => metricSample(await rig.scrape(), 'skiff_services_instances', { service: 'redis', health: 'healthy' }) === 1, 'the metrics to show the redis instance healthy', 30_000);

    t.same(await rig.ask(ServiceSubjects.unbind(rig.node), { id, app: 'app-a' }), { ok: true });
    t.same(await rig.ask(ServiceSubjects.unbind(rig.node), { id, app: 'app-a' }), { ok: true }, 'unbinding again');
    t.same(Object.keys((await rig.record(id))!.bindings), ['app-b'], 'the record forgets the app');
    t.same(await rig.ask(ServiceSubjects.deprovision(rig.node), { id }), { ok: true });
    t.same(await rig.ask(ServiceSubjects.deprovision(rig.node), { id }), { ok: true }, 'deprovisioning again');
    t.same(servers(), [], 'no redis-server left');
    t.notOk(existsSync(dir), 'its directory is gone');
    t.notOk(existsSync(join(rig.dataDir, 'services', 'secrets', `${id}.json`)), 'its password is gone');
    t.equal(await rig.record(id), undefined, 'its record is gone');
    await t.rejects(withRedis(credentials.host, credentials.port, credentials.password, (redis) => redis.command('PING')), /ECONNREFUSED/);
  });

  await t.test('postgresql: a database per instance, a role per bound app, nobody else let in', { skip: !hasPostgres && 'PostgreSQL is not installed (npm run setup)' }, async (t) => {
    const id = 'pg-one';
    t.same(await rig.ask(ServiceSubjects.provision, provision(id, 'postgresql')), { ok: true, node: rig.node }, 'the first one creates the cluster (initdb)');
    t.same(await rig.ask(ServiceSubjects.provision, provision(id, 'postgresql')), { ok: true, node: rig.node }, 'provisioning again answers the same');
    const databases = () => withPg(pgAdmin(rig), (pg) => pg.rows("SELECT datname FROM pg_database WHERE datname LIKE 'svc%' ORDER BY 1")).then((rows) => rows.map((r) => r[0]));
    t.same(await databases(), ['svc_pg-one'], 'one database');

    const a = (await bind<PostgresqlCredentials>(rig, id, 'app-a')).credentials;
    t.same((await bind<PostgresqlCredentials>(rig, id, 'app-a')).credentials, a, 'binding again gives the same credentials');
    const b = (await bind<PostgresqlCredentials>(rig, id, 'app-b')).credentials;
    await snapshotBucket(rig);
    t.equal(a.name, 'svc_pg-one');
    t.equal(b.name, a.name, 'both apps reach the same database');
    t.not(b.username, a.username, 'each app with a role of its own');
    t.equal(a.user, a.username);
    t.equal(a.uri, `postgres://${a.username}:${a.password}@127.0.0.1:${a.port}/svc_pg-one`);

    await withPg(pgAs(a), (pg) => pg.query('CREATE TABLE notes (body text); INSERT INTO notes VALUES (\'written by a\')'));
    t.same(await withPg(pgAs(b), (pg) => pg.rows('SELECT body FROM notes')), [['written by a']], 'what one bound app writes, the other reads');
    t.same(await withPg(pgAs(b), (pg) => pg.rows('SELECT current_user')), [['svc_pg-one']], 'apps act as the instance\'s role');

    // Another instance, bound to another app.
    const other = 'pg-two';
    t.same(await rig.ask(ServiceSubjects.provision, provision(other, 'postgresql', 'large')), { ok: true, node: rig.node });
    const c = (await bind<PostgresqlCredentials>(rig, other, 'app-c')).credentials;
    const refused = await withPg(pgAs(c, a.name), (pg) => pg.rows('SELECT 1')).catch((error: PgError) => error);
    t.type(refused, PgError);
    t.equal((refused as PgError).code, '42501', 'app-c\'s credentials cannot open pg-one\'s database (CONNECT revoked from PUBLIC)');
    t.match((refused as PgError).message, /permission denied for database "svc_pg-one"/);
    t.equal((await withPg(pgAs(a, c.name), (pg) => pg.rows('SELECT 1')).catch((error: PgError) => error) as PgError).code, '42501', 'nor app-a\'s pg-two\'s');
    t.equal((await withPg(pgAs(a, 'postgres'), (pg) => pg.rows('SELECT 1')).catch((error: PgError) => error) as PgError).code, '42501', 'nor the postgres database');
    const superuser = await withPg({ ...pgAs(a), user: 'postgres' }, (pg) => pg.rows('SELECT 1')).catch((error: PgError) => error);
    t.match((superuser as PgError).message, /pg_hba\.conf rejects connection/, 'the superuser cannot log in over TCP');
    t.same(await withPg(pgAdmin(rig), (pg) => pg.rows(`SELECT datconnlimit FROM pg_database WHERE datname = 'svc_pg-two'`)), [['100']], 'the large plan\'s connection limit');

    // The postmaster killed: the node starts it again, and the WAL brings the data back.
    const postmaster = Number(readFileSync(join(rig.dataDir, 'services', 'postgresql', 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(postmaster, 'SIGKILL');
    await eventually(async () => (await withPg(pgAs(b), (pg) => pg.rows('SELECT body FROM notes')).catch(() => [])).length === 1, 'postgres back with the data', 30_000);
    t.pass('killed with SIGKILL, postgres comes back with its data (WAL)');
    t.not(Number(readFileSync(join(rig.dataDir, 'services', 'postgresql', 'data', 'postmaster.pid'), 'utf8').split('\n')[0]), postmaster, 'a new postmaster');
    const health = await rig.ask<{ instances: Array<{ id: string; healthy: boolean; detail: string }> }>(ServiceSubjects.status(rig.node), { ids: [id, other] });
    t.match(health.instances, [{ id, healthy: true, detail: /^running, .* of 256 MB$/ }, { id: other, healthy: true, detail: /^running, .* of 4096 MB$/ }]);

    // Unbinding app-a drops its role alone; what it created stays the instance's.
    t.same(await rig.ask(ServiceSubjects.unbind(rig.node), { id, app: 'app-a' }), { ok: true });
    t.same(await rig.ask(ServiceSubjects.unbind(rig.node), { id, app: 'app-a' }), { ok: true }, 'unbinding again');
    const gone = await withPg(pgAs(a), (pg) => pg.rows('SELECT 1')).catch((error: PgError) => error);
    t.equal((gone as PgError).code, '28P01', 'app-a\'s credentials no longer log in');
    t.same(await withPg(pgAs(b), (pg) => pg.rows('SELECT body FROM notes')), [['written by a']], 'app-b still reads the table app-a made');

    const roles = () => withPg(pgAdmin(rig), (pg) => pg.rows("SELECT rolname FROM pg_roles WHERE rolname LIKE 'svc%' ORDER BY 1")).then((rows) => rows.map((r) => r[0]));
    t.same(await rig.ask(ServiceSubjects.deprovision(rig.node), { id }), { ok: true });
    t.same(await rig.ask(ServiceSubjects.deprovision(rig.node), { id }), { ok: true }, 'deprovisioning again');
    t.same(await databases(), ['svc_pg-two'], 'its database is gone');
    t.same(await roles(), ['svc_pg-two', c.username].sort(), 'its roles are gone, the binding\'s too');
    t.same(await rig.ask(ServiceSubjects.deprovision(rig.node), { id: other }), { ok: true });
    t.same(await databases(), []);
    t.same(await roles(), []);
    const dropped = await withPg(pgAs(b), (pg) => pg.rows('SELECT 1')).catch((error: PgError) => error);
    t.equal((dropped as PgError).code, '28P01', 'a bound app\'s credentials die with the instance');
  });

  await t.test('filesystem: a directory the bound apps share and nobody else reaches', async (t) => {
    const id = 'files-one';
    t.same(await rig.ask(ServiceSubjects.provision, provision(id, 'filesystem')), { ok: true, node: rig.node });
    t.same(await rig.ask(ServiceSubjects.provision, provision(id, 'filesystem')), { ok: true, node: rig.node }, 'provisioning again answers the same');
    t.equal(metricSample(await rig.scrape(), 'skiff_services_operations_total', { operation: 'provision', service: 'filesystem', result: 'ok' }), 2, 'both provisions are counted');
    await eventually(async () => metricSample(await rig.scrape(), 'skiff_services_instances', { service: 'filesystem', health: 'healthy' }) === 1, 'the metrics to show the instance, healthy', 30_000);
    const record = (await rig.record(id))!;
    const reply = await bind<{ dir: string }>(rig, id, 'app-a', 2_000_201);
    const dir = join(rig.dataDir, 'services', 'filesystem', id);
    t.same(reply, { credentials: { dir }, gid: record.sid }, 'its directory, and the group the DEA gives the app');
    t.same(await bind<{ dir: string }>(rig, id, 'app-b', 2_000_202), reply, 'the same for every bound app');
    const info = statSync(dir);
    t.equal(info.mode & 0o7777, 0o2770, 'mode 2770');
    if (!isRoot) return;
    t.equal(info.uid, 0);
    t.equal(info.gid, record.sid, 'group-owned by the instance\'s gid');
    t.equal(statSync(join(rig.dataDir, 'services', 'filesystem')).mode & 0o777, 0o711, 'the directories on the way are traverse-only');
    t.equal(statSync(join(rig.dataDir, 'services')).mode & 0o777, 0o711);

    // As the DEA runs them: the app's uid, the instance's gid as a supplementary group.
    const asApp = (uid: number, groups: number[], script: string) =>
      spawnSync('setpriv', ['--reuid', String(uid), '--regid', String(uid), ...(groups.length > 0 ? ['--groups', groups.join(',')] : ['--clear-groups']), '--', 'sh', '-c', script], { encoding: 'utf8' });
    const wrote = asApp(2_000_201, [record.sid!], `umask 022; echo one > ${dir}/note && cat ${dir}/note`);
    t.equal(wrote.stdout, 'one\n', 'app-a writes and reads');
    const appended = asApp(2_000_202, [record.sid!], `echo two >> ${dir}/note && cat ${dir}/note`);
    t.equal(appended.stdout, 'one\ntwo\n', 'app-b changes what app-a wrote, whatever app-a\'s umask (default ACL)');
    const outsider = asApp(2_000_203, [], `cat ${dir}/note; ls ${dir}`);
    t.not(outsider.status, 0);
    t.match(outsider.stderr, /Permission denied/, 'an app without the group reaches nothing');
    t.same(await rig.ask(ServiceSubjects.unbind(rig.node), { id, app: 'app-b' }), { ok: true });
    t.same(Object.keys((await rig.record(id))!.bindings), ['app-a'], 'unbinding forgets the app (its next start has no group)');
    const health = (await rig.ask<{ instances: Array<{ healthy: boolean; detail: string }> }>(ServiceSubjects.status(rig.node), { ids: [id] })).instances[0]!;
    t.match(health, { healthy: true, detail: /^\d.* of 256 MB$/ });
    t.same(await rig.ask(ServiceSubjects.deprovision(rig.node), { id }), { ok: true });
    t.same(await rig.ask(ServiceSubjects.deprovision(rig.node), { id }), { ok: true }, 'deprovisioning again');
    t.notOk(existsSync(dir), 'the directory is gone, with what was in it');
    const text = await rig.scrape();
    t.equal(metricSample(text, 'skiff_services_operations_total', { operation: 'bind', service: 'filesystem', result: 'ok' }), 2, 'the binds counted');
    t.equal(metricSample(text, 'skiff_services_operations_total', { operation: 'unbind', service: 'filesystem', result: 'ok' }), 1, 'the unbind counted');
    t.equal(metricSample(text, 'skiff_services_operations_total', { operation: 'deprovision', service: 'filesystem', result: 'ok' }), 1, 'the deprovision counted by its service');
  });

  await t.test('no credential in the role\'s log, its records, or a backend\'s command line', async (t) => {
    t.ok(handedOut.length >= 3, 'passwords were handed out');
    const log = rig.role.log();
    t.match(log, /INFO services: bound id=/, 'the log says what was bound');
    for (const password of handedOut) t.notOk(log.includes(password), 'a password handed out is not in the log');
    t.ok(snapshots.some((record) => record.includes('"app-b"')), 'the records of bound instances were looked at');
    for (const password of handedOut) t.notOk(snapshots.some((record) => record.includes(password)), 'nor in the records of the bucket');
    for (const p of processesIn(rig.dataDir)) {
      const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
      t.notOk(handedOut.some((password) => cmdline.includes(password)), `nor on ${p.comm}'s command line`);
    }
  });

  await t.test('stopped, it stops its backends', async (t) => {
    t.same(await rig.ask(ServiceSubjects.provision, provision('last-one', 'redis')), { ok: true, node: rig.node });
    const backends = processesIn(rig.dataDir);
    t.ok(backends.length > 0);
    await rig.role.kill('SIGTERM');
    await eventually(() => backends.every((p) => !isAlive(p.pid)), 'every backend to end', 20_000);
    t.match(rig.role.log(), /INFO services: stopping the data services signal=SIGTERM/);
  });
});

t.test('bad flags: one line, exit 2', async (t) => {
  const { skiff, tempHome } = await import('./cli_harness');
  const home = tempHome(t);
  const bad = await skiff(['services-node', '--ports', '10-5'], home);
  t.equal(bad.code, 2);
  t.equal(bad.stderr, 'skiff services-node: --ports must be FIRST-LAST with 1024 <= FIRST <= LAST <= 65535, got "10-5"\n');
  const wildcard = await skiff(['services-node', '--host', '0.0.0.0'], home);
  t.equal(wildcard.code, 2);
  t.match(wildcard.stderr, /^skiff services-node: --host must be the address apps reach the backends at \(not a wildcard\)/);
});
