// Tenancy on one DEA (design.md, "Tenancy and the bus"), with a real
// nats-server, a real `skiff dea` as root and real app processes: each app
// runs as its own uid of --app-uids; from inside app A (its /probe endpoint
// tries, as A's uid, and reports), app B's live and crashed directories,
// B's /proc entries, the data dir and the DEA's own directories are out of
// reach, and neither B nor the DEA can be signalled. Starts with uid 0 or a
// uid outside the range are refused; `files` and `ssh` act as the
// instance's uid; a crashed instance keeps its uid across a DEA restart.

import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, chownSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Bus } from '../bus/connection';
import { requestAll } from '../bus/connection';
import { deaFilesSubject, deaSshSubject, sshSubjects } from '../bus/platform';
import { decodeOutput } from '../bus/ssh-frames';
import { eventually, startNats } from './harness';
import { ENV_APP, getJson, makeDataDir, putDroplet, recorder, startDea, startRequest, type Recorder } from './dea_harness';

const isRoot = process.getuid?.() === 0;

/** Runs a command in an instance through `dea.<id>.ssh`; resolves with its stdout and exit status. */
async function sshRun(bus: Bus, deaId: string, droplet: string, instance: string, command: string): Promise<{ out: string; exit: any }> {
  const session = randomUUID();
  const subjects = sshSubjects(session);
  let out = '';
  const outSub = bus.subscribe(subjects.out, (msg) => {
    const frame = decodeOutput(msg.data)!;
    if (frame.channel === 1) out += Buffer.from(frame.data).toString('utf8');
  });
  const exit = new Promise<any>((resolve) => {
    const sub = bus.subscribe(subjects.exit, (msg) => {
      sub.unsubscribe();
      resolve(JSON.parse(Buffer.from(msg.data).toString('utf8')));
    });
  });
  await bus.flush();
  const reply = await bus.request(deaSshSubject(deaId), { session, droplet, instance, command, tty: false }, 5000);
  if (!(reply as any).ok) throw new Error(`ssh refused: ${JSON.stringify(reply)}`);
  const status = await exit;
  outSub.unsubscribe();
  return { out, exit: status };
}

async function startApp(t: Test, rec: Recorder, deaId: string, request: Record<string, unknown>): Promise<{ instance: string; port: number }> {
  const reply: any = await rec.bus.request(`dea.${deaId}.start`, startRequest(request), 5000);
  t.notOk(reply.error, `start of ${request.droplet} index ${request.index ?? 0} accepted`);
  const reg = await rec.waitFor('router.register', (r) => r.private_instance_id === reply.instance, 'registered', 15_000);
  return { instance: reply.instance, port: reg.port };
}

function mode(path: string): { uid: number; mode: string } {
  const info = statSync(path);
  return { uid: info.uid, mode: (info.mode & 0o7777).toString(8) };
}

t.test('apps on one DEA are kept apart', { skip: !isRoot && 'needs root: as another user every app runs as the DEA\'s own' }, async (t) => {
  const nats = await startNats(t);
  const rec = await recorder(t, nats.url);
  const bus = rec.bus;
  const dataDir = makeDataDir(t);
  const firstPort = 46000 + Math.floor(Math.random() * 1000) * 10;
  // A block of ten uids of its own, inside the default range.
  const base = 2_050_000 + Math.floor(Math.random() * 5000) * 10;
  const args = ['--port-range', `${firstPort}-${firstPort + 9}`, '--app-uids', `${base}-${base + 9}`, '--stop-grace', '2', '--crash-keep', '600'];
  const dea = startDea(t, nats.url, dataDir, args);
  const deaId: string = (await rec.waitFor('dea.advertise', () => true, 'first dea.advertise', 15_000)).id;
  const sha1 = await putDroplet(bus, { 'server.js': ENV_APP, 'secret.txt': 'the app\'s own secret' }, 'node server.js');

  const a = await startApp(t, rec, deaId, { droplet: 'app-a', name: 'a', uris: ['a.localhost'], sha1, uid: base });
  const b = await startApp(t, rec, deaId, { droplet: 'app-b', name: 'b', uris: ['b.localhost'], sha1, uid: base + 1, env: ['SECRET=b-env-secret'] });
  const bCrashing = await startApp(t, rec, deaId, { droplet: 'app-b', name: 'b', uris: ['b.localhost'], sha1, uid: base + 1, index: 1 });
  const envA = await getJson(a.port, '/env');
  const envB = await getJson(b.port, '/env');
  await fetch(`http://127.0.0.1:${bCrashing.port}/exit`).then((r) => r.text());
  await rec.waitFor('droplet.exited', (e) => e.instance === bCrashing.instance && e.reason === 'CRASHED', 'b index 1 crashed', 5000);

  const deaDir = join(dataDir, 'dea', '0');
  const instances = join(deaDir, 'instances');
  const dirA = join(instances, a.instance);
  const dirB = join(instances, b.instance);
  const dirCrashed = join(instances, bCrashing.instance);

  await t.test('two apps, two uids of the range; one app\'s instances share theirs', async (t) => {
    t.equal(envA.uid, base, 'app a runs as the uid of its start');
    t.equal(envB.uid, base + 1, 'app b as its own');
    t.not(envA.uid, envB.uid);
    t.same(mode(dirA), { uid: base, mode: '700' }, 'a\'s instance dir: a\'s, 0700');
    t.same(mode(dirB), { uid: base + 1, mode: '700' });
    t.same(mode(dirCrashed), { uid: base + 1, mode: '700' }, 'a crashed instance\'s dir stays 0700');
    t.equal(statSync(join(dirA, 'app', 'server.js')).uid, base, 'what is in it is the app\'s');
    for (const dir of [dataDir, join(dataDir, 'dea'), deaDir, instances]) t.same(mode(dir), { uid: 0, mode: '711' }, `${dir}: root's, traverse-only`);
    for (const dir of [join(deaDir, 'droplets'), join(deaDir, 'run')]) t.same(mode(dir), { uid: 0, mode: '700' }, `${dir}: root's alone`);
  });

  await t.test('from inside app a: nothing of b, of the data dir or of the DEA', async (t) => {
    const query = new URLSearchParams();
    const lists = [dirB, dirCrashed, dataDir, join(dataDir, 'dea'), deaDir, instances, join(deaDir, 'droplets'), join(deaDir, 'run')];
    const reads = [
      join(dirB, 'app', 'secret.txt'), join(dirCrashed, 'logs', 'stdout.log'), join(deaDir, 'run', `${b.instance}.json`),
      `/proc/${envB.pid}/environ`,
    ];
    for (const dir of [...lists, dirA]) query.append('list', dir);
    for (const file of [...reads, join(dirA, 'app', 'secret.txt')]) query.append('read', file);
    query.append('cwd', String(envB.pid));
    query.append('cwd', String(envA.pid));
    query.append('kill', String(envB.pid));
    query.append('kill', String(dea.pid));
    query.append('kill', String(envA.pid));
    const tried = await getJson(a.port, `/probe?${query}`);
    // The probe works: a reaches what is its own.
    t.equal(tried[`list ${dirA}`], 'ok', 'a lists its own instance dir');
    t.equal(tried[`read ${join(dirA, 'app', 'secret.txt')}`], 'ok', 'a reads its own files');
    t.equal(tried[`cwd ${envA.pid}`], 'ok', 'a sees its own cwd in /proc');
    t.equal(tried[`kill ${envA.pid}`], 'ok', 'a may signal itself');
    for (const dir of lists) t.equal(tried[`list ${dir}`], 'EACCES', `a cannot list ${dir}`);
    for (const file of reads) t.equal(tried[`read ${file}`], 'EACCES', `a cannot read ${file}`);
    t.equal(tried[`cwd ${envB.pid}`], 'EACCES', 'a cannot follow /proc/<b pid>/cwd');
    t.equal(tried[`kill ${envB.pid}`], 'EPERM', 'kill(b, 0): EPERM');
    t.equal(tried[`kill ${dea.pid}`], 'EPERM', 'kill(DEA, 0): EPERM');
  });

  await t.test('a start with uid 0 or outside --app-uids is refused', async (t) => {
    const root: any = await bus.request(`dea.${deaId}.start`, startRequest({ droplet: 'app-r', sha1, uid: 0 }), 5000);
    t.match(root, { error: /invalid start request: uid must be an integer 1-/ }, 'uid 0');
    const outside: any = await bus.request(`dea.${deaId}.start`, startRequest({ droplet: 'app-o', sha1, uid: base + 10 }), 5000);
    t.match(outside, { error: new RegExp(`uid ${base + 10} is outside this DEA's --app-uids ${base}-${base + 9}`) });
    const below: any = await bus.request(`dea.${deaId}.start`, startRequest({ droplet: 'app-o', sha1, uid: 65534 }), 5000);
    t.match(below, { error: /is outside this DEA's --app-uids/ }, 'nobody\'s uid is not an app uid');
    await eventually(() => /start refused: uid outside --app-uids/.test(dea.log()), 'the refusal logged', 3000);
    t.same(await requestAll(bus, 'dea.find.droplet', { droplet: 'app-o' }, { windowMs: 200 }), [], 'nothing started');
    t.same(await requestAll(bus, 'dea.find.droplet', { droplet: 'app-r' }, { windowMs: 200 }), []);
  });

  await t.test('files acts as the instance\'s uid', async (t) => {
    const locked = join(dirA, 'app', 'locked.txt');
    writeFileSync(locked, 'only root could read this');
    chownSync(locked, base, base);
    chmodSync(locked, 0o000);
    t.equal(readFileSync(locked, 'utf8'), 'only root could read this', 'root reads it');
    const refused: any = await bus.request(deaFilesSubject(deaId), { droplet: 'app-a', instance: a.instance, path: 'app/locked.txt' }, 5000);
    t.match(refused, { error: /permission denied/, code: 'not_found' }, 'files, as a\'s uid, cannot');
    t.notOk(refused.data_base64, 'no bytes');
    const own: any = await bus.request(deaFilesSubject(deaId), { droplet: 'app-a', instance: a.instance, path: 'app/secret.txt' }, 5000);
    t.equal(Buffer.from(own.data_base64, 'base64').toString(), 'the app\'s own secret', 'what the app may read, files reads');
    const listing: any = await bus.request(deaFilesSubject(deaId), { droplet: 'app-b', instance: bCrashing.instance, path: 'logs' }, 5000);
    t.same(listing.entries.map((e: any) => e.name), ['stderr.log', 'stdout.log'], 'a crashed instance\'s files, as its uid');
  });

  await t.test('ssh runs as the instance\'s uid', async (t) => {
    const { out, exit } = await sshRun(bus, deaId, 'app-a', a.instance, 'id -u; id -g; id -G');
    t.match(exit, { exit_status: 0 });
    t.same(out.trim().split('\n'), [String(base), String(base), String(base)], 'uid, gid and groups: the app\'s alone');
  });

  await t.test('a crashed instance restored by a restarted DEA keeps its uid', async (t) => {
    t.same(await dea.stop(), { code: 0, signal: null });
    const again = startDea(t, nats.url, dataDir, args);
    const second: string = (await rec.waitFor('dea.advertise', (ad) => ad.id !== deaId, 'the restarted DEA advertises', 15_000)).id;
    const [found]: any[] = await requestAll(bus, 'dea.find.droplet', { droplet: 'app-b', states: ['CRASHED'] }, { windowMs: 300 });
    t.match(found, { dea: second, instance: bCrashing.instance, state: 'CRASHED' }, 'restored');
    t.same(mode(dirCrashed), { uid: base + 1, mode: '700' });
    const { out } = await sshRun(bus, second, 'app-b', bCrashing.instance, 'id -u');
    t.equal(out.trim(), String(base + 1), 'its ssh sessions run as b\'s uid');
    const log: any = await bus.request(deaFilesSubject(second), { droplet: 'app-b', instance: bCrashing.instance, path: 'logs/stdout.log' }, 5000);
    t.equal(log.type, 'file', 'and files reads it as b\'s uid');
    await again.stop();
  });
});

t.test('a DEA that is not root says what is shared, once, and keeps working', { skip: !isRoot && 'needs root to start the DEA as another user' }, async (t) => {
  const uid = 2_099_900 + Math.floor(Math.random() * 90);
  // The DEA runs the checkout's compiled code: as another uid it must be able to read it.
  const readable = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', 'test', '-r', join(__dirname, '..', 'dist', 'dea', 'agent.js')]);
  if (readable.status !== 0) {
    t.comment('skipped: the checkout is not readable by another uid');
    return;
  }
  const nats = await startNats(t);
  const rec = await recorder(t, nats.url);
  const dataDir = makeDataDir(t);
  chownSync(dataDir, uid, uid);
  const firstPort = 47000 + Math.floor(Math.random() * 1000) * 10;
  const dea = startDea(t, nats.url, dataDir, ['--port-range', `${firstPort}-${firstPort + 9}`, '--stop-grace', '2'], { HOME: dataDir }, uid);
  const deaId: string = (await rec.waitFor('dea.advertise', () => true, 'the DEA advertises', 15_000)).id;
  const warnings = dea.log().split('\n').filter((line) => /not running as root/.test(line));
  t.equal(warnings.length, 1, 'one warning line');
  t.match(warnings[0], new RegExp(`every app runs as this DEA's own user \\(uid ${uid}\\).*read each other's files.*platform's`), 'saying what is shared');
  const sha1 = await putDroplet(rec.bus, { 'server.js': ENV_APP }, 'node server.js');
  const app = await startApp(t, rec, deaId, { droplet: 'app-n', sha1, uid: 2_000_000 });
  t.equal((await getJson(app.port, '/env')).uid, uid, 'the app runs, as the DEA\'s own user');
  t.same(await dea.stop(), { code: 0, signal: null });
});
