// Bound services on a real DEA (design.md, Data services): a real
// nats-server, a real `skiff dea` as root and real app processes. The
// start's `services` become VCAP_SERVICES (without the gid), DATABASE_URL
// and REDIS_URL (only when one service of the kind is bound); a
// filesystem's gid becomes a supplementary group of the app's processes,
// its `skiff ssh` sessions and its `files` reads, so a group-only directory
// is the bound app's and no other's; a gid outside --service-gids is
// refused; no credential reaches the DEA's log.

import { randomUUID } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Bus } from '../bus/connection';
import { requestAll } from '../bus/connection';
import { deaFilesSubject, deaSshSubject, sshSubjects } from '../bus/platform';
import { decodeOutput } from '../bus/ssh-frames';
import { startNats } from './harness';
import { getJson, makeDataDir, putDroplet, recorder, startDea, startRequest, type Recorder } from './dea_harness';

const isRoot = process.getuid?.() === 0;

/** Answers with its environment and groups; `/read?file=F` reads F as the app. */
const SERVICES_APP = `
const http = require('http');
const fs = require('fs');
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://app');
  res.setHeader('content-type', 'application/json');
  if (url.pathname === '/read') {
    try { res.end(JSON.stringify({ ok: fs.readFileSync(url.searchParams.get('file'), 'utf8') })); }
    catch (err) { res.end(JSON.stringify({ error: err.code })); }
    return;
  }
  res.end(JSON.stringify({ env: process.env, uid: process.getuid(), gid: process.getgid(), groups: process.getgroups() }));
}).listen(Number(process.env.PORT), process.env.VCAP_APP_HOST);
`;

async function sshRun(bus: Bus, deaId: string, droplet: string, instance: string, command: string): Promise<string> {
  const session = randomUUID();
  const subjects = sshSubjects(session);
  let out = '';
  bus.subscribe(subjects.out, (msg) => {
    const frame = decodeOutput(msg.data)!;
    if (frame.channel === 1) out += Buffer.from(frame.data).toString('utf8');
  });
  const exit = new Promise<unknown>((resolve) => bus.subscribe(subjects.exit, (msg) => resolve(JSON.parse(Buffer.from(msg.data).toString('utf8')))));
  await bus.flush();
  const reply = await bus.request(deaSshSubject(deaId), { session, droplet, instance, command, tty: false }, 5000);
  if (!(reply as { ok?: boolean }).ok) throw new Error(`ssh refused: ${JSON.stringify(reply)}`);
  await exit;
  return out;
}

async function start(rec: Recorder, deaId: string, request: Record<string, unknown>): Promise<{ instance: string; port: number }> {
  const reply: any = await rec.bus.request(`dea.${deaId}.start`, startRequest(request), 5000);
  if (reply.error) throw new Error(`start refused: ${reply.error}`);
  const reg = await rec.waitFor('router.register', (r) => r.private_instance_id === reply.instance, 'registered', 15_000);
  return { instance: reply.instance, port: reg.port };
}

t.test('a DEA gives an app its bound services: environment and groups', async (t) => {
  const nats = await startNats(t);
  const rec = await recorder(t, nats.url);
  const bus = rec.bus;
  const dataDir = makeDataDir(t);
  const firstPort = 43000 + Math.floor(Math.random() * 1000) * 10;
  const uids = 2_060_000 + Math.floor(Math.random() * 5000) * 10;
  const gids = 2_200_000 + Math.floor(Math.random() * 5000) * 10;
  const dea = startDea(t, nats.url, dataDir, [
    '--port-range', `${firstPort}-${firstPort + 9}`, '--app-uids', `${uids}-${uids + 9}`, '--service-gids', `${gids}-${gids + 9}`, '--stop-grace', '1',
  ]);
  const deaId: string = (await rec.waitFor('dea.advertise', () => true, 'first dea.advertise', 15_000)).id;
  const sha1 = await putDroplet(bus, { 'server.js': SERVICES_APP }, 'node server.js');

  // A filesystem service's directory as a services node makes it: root's, its group's, nobody else's.
  const shared = mkdtempSync(join(tmpdir(), 'skiff-shared-'));
  t.teardown(() => rmSync(shared, { recursive: true, force: true }));
  chmodSync(shared, 0o755);
  const dir = join(shared, 'files');
  mkdirSync(dir);
  writeFileSync(join(dir, 'note.txt'), 'shared by the bound apps');
  chownSync(dir, 0, gids);
  chmodSync(dir, 0o2770);
  chownSync(join(dir, 'note.txt'), 0, gids);
  chmodSync(join(dir, 'note.txt'), 0o660);

  const pgPassword = `pg-secret-${randomUUID()}`;
  const redisPassword = `redis-secret-${randomUUID()}`;
  const pg = {
    name: 'notes-db', label: 'postgresql', plan: 'free', tags: ['postgresql', 'relational'],
    credentials: { host: '127.0.0.1', hostname: '127.0.0.1', port: 5433, name: 'd1', username: 'u1', user: 'u1', password: pgPassword, uri: `postgres://u1:${pgPassword}@127.0.0.1:5433/d1` },
  };
  const redis = {
    name: 'cache', label: 'redis', plan: 'free', tags: ['redis'],
    credentials: { host: '127.0.0.1', hostname: '127.0.0.1', port: 6390, password: redisPassword, uri: `redis://:${redisPassword}@127.0.0.1:6390` },
  };
  const files = { name: 'files', label: 'filesystem', plan: 'free', tags: ['filesystem'], credentials: { dir }, gid: gids };

  const bound = await start(rec, deaId, { droplet: 'app-s', name: 'svc', uris: ['svc.localhost'], sha1, uid: uids, services: [pg, redis, files], env: ['REDIS_URL=redis://elsewhere'] });
  const other = await start(rec, deaId, { droplet: 'app-o', name: 'other', uris: ['other.localhost'], sha1, uid: uids + 1, services: [pg, { ...pg, name: 'second-db' }] });
  const seen = await getJson(bound.port, '/');
  const env = seen.env as Record<string, string>;

  await t.test('VCAP_SERVICES by label, without the gid; DATABASE_URL and REDIS_URL from the one of each', async (t) => {
    const vcap = JSON.parse(env.VCAP_SERVICES!);
    t.same(Object.keys(vcap).sort(), ['filesystem', 'postgresql', 'redis']);
    t.same(vcap.postgresql, [pg], 'CF v1\'s shape: name, label, plan, tags, credentials');
    t.same(vcap.filesystem, [{ name: 'files', label: 'filesystem', plan: 'free', tags: ['filesystem'], credentials: { dir } }], 'no gid in it');
    t.equal(env.DATABASE_URL, pg.credentials.uri);
    t.equal(env.REDIS_URL, redis.credentials.uri, 'the bound redis wins over the app\'s own REDIS_URL');
    const two = (await getJson(other.port, '/')).env as Record<string, string>;
    t.equal(JSON.parse(two.VCAP_SERVICES!).postgresql.length, 2, 'two databases in VCAP_SERVICES');
    t.notOk('DATABASE_URL' in two, 'and no DATABASE_URL: the app has to choose');
    t.notOk('REDIS_URL' in two);
  });

  await t.test('the filesystem\'s gid is a supplementary group of the bound app, and of nobody else', { skip: !isRoot && 'needs root: groups are set with setpriv' }, async (t) => {
    t.equal(seen.uid, uids, 'the app\'s own uid');
    t.equal(seen.gid, uids, 'and gid');
    t.same(seen.groups.sort(), [uids, gids].sort(), 'its groups: its own, and the service\'s');
    t.same(await getJson(bound.port, `/read?file=${encodeURIComponent(join(dir, 'note.txt'))}`), { ok: 'shared by the bound apps' }, 'it reads the shared directory');
    const otherSeen = await getJson(other.port, '/');
    t.same(otherSeen.groups, [uids + 1], 'an app without the binding: its own group alone');
    t.same(await getJson(other.port, `/read?file=${encodeURIComponent(join(dir, 'note.txt'))}`), { error: 'EACCES' }, 'and cannot read it');
  });

  await t.test('ssh sessions and files reads get the same groups', { skip: !isRoot && 'needs root' }, async (t) => {
    const out = await sshRun(bus, deaId, 'app-s', bound.instance, `id -G; cat ${join(dir, 'note.txt')}`);
    const [groups, note] = out.trim().split('\n');
    t.same(groups!.split(' ').map(Number).sort(), [uids, gids].sort(), 'id -G in a session');
    t.equal(note, 'shared by the bound apps', 'a session reads the shared directory');
    t.equal((await sshRun(bus, deaId, 'app-o', other.instance, 'id -G')).trim(), String(uids + 1), 'the other app\'s session: its own group alone');
    // A file of the instance only the service's group may read: `files` reads it as the app, groups included.
    const instanceDir = join(dataDir, 'dea', '0', 'instances', bound.instance);
    const groupOnly = join(instanceDir, 'app', 'group-only.txt');
    writeFileSync(groupOnly, 'for the group');
    chownSync(groupOnly, 0, gids);
    chmodSync(groupOnly, 0o040);
    const read: any = await bus.request(deaFilesSubject(deaId), { droplet: 'app-s', instance: bound.instance, path: 'app/group-only.txt' }, 5000);
    t.equal(Buffer.from(read.data_base64 ?? '', 'base64').toString(), 'for the group', 'files reads it with the app\'s groups');
  });

  await t.test('a gid outside --service-gids is refused, with one clear line', async (t) => {
    for (const gid of [0, 27, gids + 10]) {
      const refused: any = await bus.request(`dea.${deaId}.start`, startRequest({ droplet: 'app-x', sha1, uid: uids + 2, services: [{ ...files, gid }] }), 5000);
      t.match(refused.error, gid === 0 ? /invalid start request: services\[0\]\.gid must be an integer/ : new RegExp(`^service gid ${gid} is outside this DEA's --service-gids ${gids}-${gids + 9}`), `gid ${gid}`);
    }
    t.same(await requestAll(bus, 'dea.find.droplet', { droplet: 'app-x' }, { windowMs: 200 }), [], 'nothing started');
  });

  await t.test('no credential in the DEA\'s log', async (t) => {
    await dea.stop();
    t.match(dea.log(), /start refused: a bound service's gid/, 'the refusal is logged');
    t.notMatch(dea.log(), new RegExp(`${pgPassword}|${redisPassword}`), 'never a password');
  });
});
