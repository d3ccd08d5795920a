// Failures as a user meets them, on `skiff up` plus a second DEA started
// here, with tiny health.* settings in the config store: a killed app
// process comes back and is routed again; a killed DEA's instance moves to
// the other DEA while the surviving instance keeps answering; an app that
// always crashes shows FLAPPING, backs off and is given up (`gave_up`); and
// logs, crashes, stats and files work on running and crashed instances.
// Every process is ended by pid.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { putSetting } from '../../bus/config';
import { finish, spawnSkiff, tempHome } from '../cli_harness';
import { eventually, sleep } from '../harness';
import { platformBus, platformCredentials, platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';

const HELLO = join(__dirname, '..', '..', 'examples', 'hello-node');
/** skiff up's DEA takes ports from its default range. */
const FIRST_DEA_PORTS = { first: 61000, last: 61999 };

// droplet_lost stays above the DEA's 10 s heartbeat, or live instances would count as lost.
const HEALTH_SETTINGS: Record<string, number> = {
  droplet_lost: 13,
  flapping_timeout: 120,
  flapping_death: 1,
  min_restart_delay: 2,
  max_restart_delay: 4,
  giveup_crash_number: 3,
  analysis_interval: 1,
};

interface Instance {
  index: number;
  state: string;
  since: number;
  host: string | null;
  port: number | null;
  instance: string;
}

function get(port: number, host: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** A long-running `skiff` process whose output (stdout and stderr) is kept and whose tree is ended at teardown. */
function started(t: tap.Test, args: string[], home: string, limitMs: number, env: NodeJS.ProcessEnv = {}): { pid: number; out: () => string; kill: (signal: NodeJS.Signals) => void } {
  const tree = startSkiffTree(t, args, home, limitMs, env);
  return { pid: tree.pid, out: () => tree.out() + tree.err(), kill: tree.kill };
}

t.test('failures: a killed instance, a killed DEA, a crash loop, and looking into them', async (t) => {
  const began = Date.now();
  const dataDir = platformDataDir(t, 'skiff-fail-');
  const secondDeaDir = platformDataDir(t, 'skiff-fail-dea-');
  const home = tempHome(t);
  const ports = await platformPorts();
  const natsUrl = `nats://127.0.0.1:${ports.nats}`;
  const cli = async (args: string[], limitMs = 20_000) => finish(spawnSkiff(args, home), limitMs);
  const run = async (args: string[], limitMs?: number): Promise<string> => {
    const result = await cli(args, limitMs);
    t.equal(result.code, 0, `skiff ${args.join(' ')} (stderr: ${result.stderr.trim().split('\n').slice(-3).join(' | ')})`);
    return result.stdout;
  };
  const listInstances = async (name: string): Promise<Instance[]> => {
    const token = (JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')) as { token: string }).token;
    const reply = await fetch(`http://127.0.0.1:${ports.api}/apps/${name}/instances`, { headers: { authorization: `Bearer ${token}` } });
    const body = await reply.text();
    if (reply.status !== 200) throw new Error(`GET /apps/${name}/instances: ${reply.status} ${body}`);
    return (JSON.parse(body) as { instances: Instance[] }).instances;
  };

  const platform = started(t, upArgs(dataDir, ports), home, 240_000);
  await eventually(() => /^router: http/m.test(platform.out()), 'skiff up to print its router line', 60_000);
  if (process.env.E2E_FAILURES_LOGS) t.teardown(() => writeFileSync(join(process.env.E2E_FAILURES_LOGS!, 'up.log'), platform.out()));

  const bus = await platformBus(t, dataDir, 'e2e-failures');
  for (const [key, value] of Object.entries(HEALTH_SETTINGS)) await putSetting(bus, `health.${key}`, value);
  const deas = new Set<string>();
  const advertised = bus.subscribe('dea.advertise', (msg) => deas.add((JSON.parse(Buffer.from(msg.data).toString()) as { id: string }).id));
  t.teardown(() => advertised.unsubscribe());

  const base = 62000 + Math.floor(Math.random() * 30) * 100;
  const secondDeaPorts = { first: base, last: base + 99 };
  const secondDea = started(
    t,
    ['dea', '--nats', natsUrl, '--data-dir', secondDeaDir, '--index', '1', '--port-range', `${secondDeaPorts.first}-${secondDeaPorts.last}`],
    home,
    240_000,
    // A DEA joining the platform connects as its NATS user.
    { SKIFF_NATS_CREDENTIALS: platformCredentials(dataDir, 'dea') },
  );
  if (process.env.E2E_FAILURES_LOGS) t.teardown(() => writeFileSync(join(process.env.E2E_FAILURES_LOGS!, 'dea1.log'), secondDea.out()));
  await eventually(() => deas.size >= 2, 'both DEAs to advertise', 30_000);
  const onSecondDea = (i: Instance) => i.port !== null && i.port >= secondDeaPorts.first && i.port <= secondDeaPorts.last;
  const onFirstDea = (i: Instance) => i.port !== null && i.port >= FIRST_DEA_PORTS.first && i.port <= FIRST_DEA_PORTS.last;

  // An app that listens, says so, and dies 2.5 s later, every time.
  const crasherDir = join(dataDir, 'crasher-src');
  mkdirSync(crasherDir);
  writeFileSync(
    join(crasherDir, 'server.js'),
    `require('node:http').createServer((q, s) => s.end('short-lived\\n')).listen(Number(process.env.PORT), () => console.log('crasher up'));
setTimeout(() => { console.error('crasher: exiting with 1'); process.exit(1); }, 2500);
`,
  );

  const [survivorPush, pairPush, crasherPush] = await Promise.all([
    cli(['push', HELLO, '--name', 'survivor'], 120_000),
    cli(['push', HELLO, '--name', 'pair', '--instances', '2'], 120_000),
    cli(['push', crasherDir, '--name', 'crasher', '--timeout', '30'], 120_000),
  ]);
  t.equal(survivorPush.code, 0, `push survivor (${survivorPush.stderr.trim()})`);
  t.equal(pairPush.code, 0, `push pair (${pairPush.stderr.trim()})`);
  t.comment(`crasher push exited ${crasherPush.code} (it may or may not catch its instance running)`);
  t.comment(`platform and pushes ready after ${Math.round((Date.now() - began) / 1000)} s`);

  // (1) and (3) run side by side.
  const killedInstance = async (): Promise<string> => {
    const [victim] = (await listInstances('survivor')).filter((i) => i.state === 'RUNNING');
    if (victim === undefined) throw new Error('survivor has no running instance');
    const recordDir = onSecondDea(victim) ? join(secondDeaDir, 'dea', '1', 'run') : join(dataDir, 'dea', '0', 'run');
    const record = JSON.parse(readFileSync(join(recordDir, `${victim.instance}.json`), 'utf8')) as { pid: number };
    const killedAt = Date.now();
    // The instance leads its own process group: the whole app goes, as when the kernel's OOM killer or a bug takes it.
    process.kill(-record.pid, 'SIGKILL');
    await eventually(
      async () => (await listInstances('survivor')).some((i) => i.state === 'RUNNING' && i.instance !== victim.instance) && (await get(ports.router, 'survivor.localhost')) === 200,
      'a new survivor instance running and routed',
      15_000,
    );
    t.ok(Date.now() - killedAt <= 15_000, `(1) the killed instance is back and routed after ${Date.now() - killedAt} ms`);
    return victim.instance;
  };

  const crashLoop = async (): Promise<void> => {
    const loopBegan = Date.now();
    await eventually(async () => /^state:\s+FLAPPING$/m.test((await cli(['app', 'crasher'])).stdout), 'skiff app to show crasher FLAPPING', 40_000);
    t.pass(`(3) skiff app shows FLAPPING after ${Date.now() - loopBegan} ms`);
    const listed = JSON.parse((await cli(['apps', '--json'])).stdout) as Array<{ name: string; state: string }>;
    t.equal(listed.find((a) => a.name === 'crasher')?.state, 'FLAPPING', 'skiff apps too');
    type Event = { type: string; description: string; time: number };
    let events: Event[] = [];
    await eventually(
      async () => {
        events = JSON.parse((await cli(['events', 'crasher', '--json'])).stdout || '[]') as Event[];
        return events.some((e) => e.type === 'gave_up');
      },
      'a gave_up event',
      45_000,
    );
    t.ok(events.some((e) => e.type === 'hm_restarted' && /\(flapping\)/.test(e.description)), 'skiff events shows the flapping restarts');
    t.match(events.find((e) => e.type === 'gave_up')!.description, /gave up on index 0 after 4 crashes/, 'and the give-up');
    t.equal(events.filter((e) => e.type === 'gave_up').length, 1, 'once');
    t.match((await cli(['events', 'crasher'])).stdout, /gave_up\s+health manager\s+gave up/, 'in the table too');
    t.comment(`(3) given up after ${Date.now() - loopBegan} ms`);

    const crashes = JSON.parse((await cli(['crashes', 'crasher', '--json'])).stdout) as Array<{ since: number }>;
    const times = crashes.map((c) => c.since).sort((a, b) => a - b);
    t.equal(times.length, 4, `four crashes recorded (${times.join(', ')})`);
    const gaps = times.slice(1).map((time, i) => time - times[i]!);
    // Each crash takes start + 2.5 s; the backoff adds 0 s, then 2 s, then 4 s.
    t.ok(gaps[2]! >= gaps[0]! + 3, `the restarts back off (gaps between crashes: ${gaps.join(', ')} s)`);
    await sleep(HEALTH_SETTINGS.max_restart_delay! * 1000 + 4000);
    const later = JSON.parse((await cli(['crashes', 'crasher', '--json'])).stdout) as unknown[];
    t.equal(later.length, 4, 'no more restarts after giving up');
    t.notOk((await listInstances('crasher')).some((i) => i.state === 'RUNNING' || i.state === 'STARTING'), 'no instance of crasher runs');
    t.match((await cli(['app', 'crasher'])).stdout, /^state:\s+FLAPPING$/m, 'still FLAPPING while given up');
  };

  const [killed] = await Promise.all([killedInstance(), crashLoop()]);

  // (4) looking into running and crashed instances.
  t.match(await run(['logs', 'survivor']), /hello-node instance 0 listening on/, '(4) logs of the running instance');
  t.match(await run(['logs', 'survivor', '--instance', killed]), /hello-node instance 0 listening on/, 'logs of the killed instance');
  const survivorCrashes = await run(['crashes', 'survivor']);
  t.match(survivorCrashes.split('\n')[0], /^INSTANCE\s+INDEX\s+SINCE\s+REASON\s+EXIT/, 'crashes has its header');
  t.match(survivorCrashes, killed, 'and lists the killed instance');
  const stats = await run(['stats', 'survivor']);
  t.match(stats.split('\n')[0], /^INDEX\s+STATE\s+CPU\s+MEM\s+DISK\s+UPTIME/, 'stats has its header');
  t.match(stats, /^0\s+RUNNING\s/m, 'and the running index');
  t.match(await run(['files', 'survivor']), /app\//, 'files lists the running instance\'s directory');
  t.match(await run(['files', 'survivor', 'logs/stdout.log', '--instance', killed]), /listening on/, 'files of the killed instance');
  t.match(await run(['logs', 'crasher']), /crasher up/, 'logs of a crashed instance (nothing runs)');
  t.match(await run(['files', 'crasher', 'logs/stderr.log']), /crasher: exiting with 1/, 'its files');
  t.equal((await run(['crashes', 'crasher'])).trim().split('\n').length, 5, 'crashes of crasher: header and four rows');
  t.match(await run(['stats', 'crasher']), /^0\s+CRASHED\b/m, 'stats of crasher: index 0 crashed');

  // (2) a DEA dies with an instance of a two-instance app.
  const pair = (await listInstances('pair')).filter((i) => i.state === 'RUNNING');
  t.equal(pair.length, 2, 'pair runs two instances');
  t.ok(pair.some(onSecondDea), `one of them on the second DEA (${pair.map((i) => i.port).join(', ')})`);
  const oneLeft = pair.some(onFirstDea);
  const polled: Array<{ at: number; status: number }> = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      polled.push({ at: Date.now(), status: await get(ports.router, 'pair.localhost') });
      await sleep(50);
    }
  })();
  await sleep(500);
  const deaKilledAt = Date.now();
  secondDea.kill('SIGKILL');
  await eventually(
    async () => (await listInstances('pair')).filter((i) => i.state === 'RUNNING' && onFirstDea(i)).length === 2,
    'both pair instances running on the first DEA',
    45_000,
  );
  const moved = Date.now() - deaKilledAt;
  // And on a while after the move: the client must see the app whole again, not just while it moved.
  await sleep(2000);
  polling = false;
  await poller;
  t.ok(moved <= 45_000, `(2) the instance moved to the other DEA after ${moved} ms`);
  const failures = polled.filter((p) => p.status !== 200);
  t.ok(polled.length > 20 && polled[0]!.at < deaKilledAt && polled.at(-1)!.at > deaKilledAt + moved + 1000, `the client polled throughout: before the kill, during the move and after it (${polled.length} requests)`);
  if (oneLeft) t.same(failures, [], 'with one instance alive throughout, the client saw no error');
  else t.comment(`both instances were on the killed DEA: ${failures.length} errors while none was alive`);
  t.comment(`whole test: ${Math.round((Date.now() - began) / 1000)} s`);
});
