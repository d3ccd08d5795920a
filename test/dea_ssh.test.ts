// The DEA's side of `skiff ssh`, on the bus: a real nats-server, a real
// `skiff dea`, a real instance. Terminal sessions and their resizing, output
// paused and resumed, sessions on a crashed instance, and bad requests.

import { randomUUID } from 'node:crypto';
import t from 'tap';
import type { Bus } from '../bus/connection';
import { deaSshSubject, sshSubjects } from '../bus/platform';
import { decodeOutput } from '../bus/ssh-frames';
import { eventually, sleep, startNats } from './harness';
import { ENV_APP, getJson, makeDataDir, putDroplet, recorder, startDea, startRequest } from './dea_harness';

interface Session {
  id: string;
  reply: any;
  output(): string;
  stderr(): string;
  bytes(): number;
  exit: Promise<any>;
  send(text: string): void;
  control(message: object): void;
}

async function openSession(bus: Bus, deaId: string, request: Record<string, unknown>): Promise<Session> {
  const id = randomUUID();
  const subjects = sshSubjects(id);
  let out = '';
  let err = '';
  let bytes = 0;
  const outSub = bus.subscribe(subjects.out, (msg) => {
    const frame = decodeOutput(msg.data)!;
    bytes += frame.data.length;
    if (frame.channel === 2) err += Buffer.from(frame.data).toString('utf8');
    else out += Buffer.from(frame.data).toString('utf8');
  });
  let exitSub: { unsubscribe(): void } | undefined;
  const exit = new Promise<any>((resolve) => {
    exitSub = bus.subscribe(subjects.exit, (msg) => resolve(JSON.parse(Buffer.from(msg.data).toString('utf8'))));
  });
  void exit.then(() => {
    outSub.unsubscribe();
    exitSub?.unsubscribe();
  });
  await bus.flush();
  const reply = await bus.request(deaSshSubject(deaId), { session: id, ...request }, 5000);
  return {
    id,
    reply,
    output: () => out,
    stderr: () => err,
    bytes: () => bytes,
    exit,
    send: (text) => bus.publish(subjects.in, Buffer.from(text)),
    control: (message) => bus.publish(subjects.ctl, message),
  };
}

t.test('ssh sessions on a DEA', async (t) => {
  const nats = await startNats(t);
  const rec = await recorder(t, nats.url);
  const dataDir = makeDataDir(t);
  const first = 42000 + Math.floor(Math.random() * 2000) * 10;
  const dea = startDea(t, nats.url, dataDir, ['--port-range', `${first}-${first + 9}`, '--start-timeout', '5', '--stop-grace', '2', '--memory', '1024']);
  const advert = await rec.waitFor('dea.advertise', () => true, 'first dea.advertise', 15_000);
  const deaId: string = advert.id;
  const bus = rec.bus;
  const sha1 = await putDroplet(bus, { 'server.js': ENV_APP }, 'node server.js');
  // The app's own uid (as root): the sessions, their terminals and the resizing `stty` must all be it.
  const uid = 2_090_000 + Math.floor(Math.random() * 9000);
  const started: any = await bus.request(`dea.${deaId}.start`, startRequest({ sha1, uid }), 5000);
  const reg = await rec.waitFor('router.register', (r) => r.private_instance_id === started.instance, 'router.register', 15_000);
  const target = { droplet: 'app-1', instance: started.instance };

  await t.test('a terminal of the asked size, resized on request', async (t) => {
    const s = await openSession(bus, deaId, { ...target, command: '', tty: true, cols: 100, rows: 30 });
    t.same(s.reply, { ok: true });
    s.send('stty size\n');
    await eventually(() => s.output().includes('30 100'), 'the first size', 5000);
    s.control({ resize: [120, 40] });
    await sleep(500);
    s.send('stty size; echo $TERM\n');
    await eventually(() => s.output().includes('40 120'), 'the new size', 5000);
    t.match(s.output(), /xterm/, 'TERM on a terminal');
    s.send('exit 7\n');
    t.match(await s.exit, { exit_status: 7 }, 'the shell\'s exit status');
  });

  await t.test('paused output waits in the pipe, resumed it arrives whole', async (t) => {
    const s = await openSession(bus, deaId, { ...target, command: 'read go; seq 1 300000', tty: false });
    t.same(s.reply, { ok: true });
    s.control({ pause: true });
    await bus.flush();
    s.send('go\n');
    await sleep(1000);
    t.ok(s.bytes() < 300_000, `little arrives while paused (${s.bytes()} bytes)`);
    t.same(await bus.request(sshSubjects(s.id).ctl, { ping: true }, 2000), { ok: true }, 'a live session answers ping');
    s.control({ resume: true });
    const exit = await s.exit;
    t.match(exit, { exit_status: 0 });
    const expected = Array.from({ length: 300000 }, (_, i) => `${i + 1}\n`).join('');
    t.ok(s.output() === expected, `all ${expected.length} bytes, in order (${s.bytes()})`);
  });

  await t.test('a crashed instance keeps its directory, and takes sessions', async (t) => {
    await getJson(reg.port, '/exit').catch(() => {});
    await rec.waitFor('droplet.exited', (m) => m.instance === started.instance && m.reason === 'CRASHED', 'the crash', 10_000);
    const s = await openSession(bus, deaId, { ...target, command: 'pwd; echo $PORT; id -u; ls ..', tty: false });
    t.same(s.reply, { ok: true });
    t.match(await s.exit, { exit_status: 0 });
    const [cwd, port, sessionUid] = s.output().split('\n');
    t.equal(Number(sessionUid), process.getuid?.() === 0 ? uid : process.getuid?.(), 'as the app\'s own uid (root), or the DEA\'s user');
    t.match(cwd, new RegExp(`/instances/${started.instance}/app$`));
    t.equal(Number(port), reg.port, 'the environment it ran with');
    t.match(s.output(), /^logs$/m, 'its logs are there to read');
  });

  await t.test('bad requests are refused, counted and logged', async (t) => {
    t.match(await bus.request(deaSshSubject(deaId), { droplet: 'app-1', instance: started.instance, session: 'not.a-uuid' }, 2000), { code: 'bad_request' });
    t.match(await bus.request(deaSshSubject(deaId), Buffer.from('not json'), 2000), { code: 'bad_request' });
    t.match(await bus.request(deaSshSubject(deaId), { droplet: 'app-1', instance: 'nope', session: randomUUID() }, 2000), { code: 'unknown_instance' });
    await eventually(() => /rejected message.*dea\.[0-9a-f-]+\.ssh/.test(dea.log()), 'the rejection in the log', 3000);
  });
});
