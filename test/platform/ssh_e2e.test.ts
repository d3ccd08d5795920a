// `skiff ssh` as a user meets it: `skiff up`, hello-node pushed, then
// commands in its instance (its PORT, directory and user, stderr apart, the
// exit code), stdin piped through, nothing of the platform's environment,
// refusals for another user and unknown instances, and an interactive shell
// on a terminal. Every process is ended by pid.

import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { WebSocket } from 'ws';
import { decodeOutput } from '../../bus/ssh-frames';
import { DEFAULT_APP_UIDS, inRange } from '../../bus/uids';
import { finish, SKIFF_BIN, skiff, skiffOnTerminal, spawnSkiff, tempHome, type SkiffRun } from '../cli_harness';
import { eventually, isAlive, sleep } from '../harness';
import { platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';
import { get } from '../router_harness';

const EXAMPLES = join(__dirname, '..', '..', 'examples');


/** Pids whose command line is exactly `words`. */
function processesRunning(words: string[]): number[] {
  const wanted = words.join('\0') + '\0';
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8') === wanted) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}


/** A raw session on the WebSocket: its stdout and last text frame, or the refusal's status. */
function rawSession(url: string, headers: Record<string, string>, stdin?: Buffer): Promise<{ status?: number; stdout: string; last?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => {
      if (stdin === undefined) return;
      ws.send(stdin, { binary: true });
      ws.send(JSON.stringify({ eof: true }));
    });
    let stdout = '';
    let last: string | undefined;
    const timer = setTimeout(() => reject(new Error('no end of the session within 10 s')), 10_000);
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      res.resume();
      resolve({ status: res.statusCode, stdout });
    });
    ws.on('message', (data: Buffer, binary: boolean) => {
      if (!binary) last = data.toString('utf8');
      else stdout += Buffer.from(decodeOutput(data)!.data).toString('utf8');
    });
    ws.on('close', () => {
      clearTimeout(timer);
      resolve({ stdout, last });
    });
    ws.on('error', reject);
  });
}

function oneLine(t: tap.Test, run: SkiffRun, pattern: RegExp, what: string): void {
  t.not(run.code, 0, `${what}: non-zero exit`);
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  t.equal(lines.length, 1, `${what}: one line (${run.stderr.trim()})`);
  t.match(lines[0], pattern, what);
}

t.test('skiff ssh into a running instance', async (t) => {
  const dataDir = platformDataDir(t, 'skiff-ssh-');
  const home = tempHome(t);
  const ports = await platformPorts();
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 120_000);
  await eventually(() => platform.out().includes('router: '), 'skiff up to print its router line', 60_000);

  const pushed = await skiff(['push', join(EXAMPLES, 'hello-node')], home);
  t.equal(pushed.code, 0, `push hello-node (${pushed.stderr.trim().split('\n').pop()})`);
  const token = JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')).token as string;
  const auth = { authorization: `Bearer ${token}` };
  const listed = JSON.parse((await get({ port: ports.api, path: '/apps/hello-node/instances', headers: auth })).body.toString()) as { instances: Array<{ port: number; state: string }> };
  const running = listed.instances.find((i) => i.state === 'RUNNING');
  t.ok(running, 'hello-node runs');

  // --- a command: its PORT, directory and user; stderr apart; the exit code ---
  const run = await skiff(['ssh', 'hello-node', '--', 'sh', '-c', 'echo $PORT; pwd; id -u; echo err >&2; exit 3'], home);
  t.equal(run.code, 3, `the remote exit code is the CLI's (${run.stderr.trim()})`);
  const [port, cwd, user] = run.stdout.trim().split('\n');
  t.equal(Number(port), running!.port, 'the instance\'s own PORT');
  t.ok(cwd!.startsWith(dataDir) && cwd!.endsWith('/app'), `in the instance's app directory (${cwd})`);
  if (process.getuid?.() === 0) t.ok(inRange(DEFAULT_APP_UIDS, Number(user)), `as the app's own unprivileged uid, from --app-uids (${user})`);
  else t.equal(Number(user), process.getuid?.(), 'as the DEA\'s own user (not root)');
  t.equal(run.stderr, 'err\n', 'stderr apart, on stderr');
  t.notMatch(run.stdout, /err/);

  // --- stdin piped through ---
  const cat = spawn(process.execPath, [SKIFF_BIN, 'ssh', 'hello-node', '--', 'cat'], { env: { ...process.env, SKIFF_HOME: home }, stdio: ['pipe', 'pipe', 'pipe'] });
  const catDone = finish(cat);
  cat.stdin!.end('hi\nthere\n');
  const echoed = await catDone;
  t.equal(echoed.stdout, 'hi\nthere\n', 'echo hi | skiff ssh hello-node -- cat');
  t.equal(echoed.code, 0);

  // --- the app's environment, nothing of the platform's ---
  const env = await skiff(['ssh', 'hello-node', 'env'], home);
  t.equal(env.code, 0);
  t.match(env.stdout, /^VCAP_APPLICATION=/m, 'the app\'s environment');
  t.match(env.stdout, new RegExp(`^PORT=${running!.port}$`, 'm'));
  t.notMatch(env.stdout, /^(NATS_URL|SKIFF_[A-Z_]*)=/m, 'none of the DEA\'s own variables');

  // --- through the router, as api.<domain>, with the command in its header ---
  const routed = await rawSession(`ws://127.0.0.1:${ports.router}/apps/hello-node/instances/0/ssh`, {
    host: 'api.localhost', authorization: `Bearer ${token}`, 'x-skiff-command': encodeURIComponent('echo via-router; exit 5'),
  });
  t.same(routed, { stdout: 'via-router\n', last: '{"exit":5}' }, 'a session through the router');
  const pasted = await rawSession(`ws://127.0.0.1:${ports.api}/apps/hello-node/instances/0/ssh`, {
    authorization: `Bearer ${token}`, 'x-skiff-command': 'wc -c',
  }, Buffer.alloc(3 * 1024 * 1024 - 1, 'x'));
  t.same(pasted, { stdout: `${3 * 1024 * 1024 - 1}\n`, last: '{"exit":0}' }, 'a 3 MiB frame of stdin arrives whole (sliced for NATS)');
  const anonymous = await rawSession(`ws://127.0.0.1:${ports.api}/apps/hello-node/instances/0/ssh`, {});
  t.equal(anonymous.status, 401, 'no token: 401 before any upgrade');

  // --- refusals: one clear line each ---
  oneLine(t, await skiff(['ssh', 'nope', '--', 'true'], home), /unknown app "nope"/, 'an unknown app');
  oneLine(t, await skiff(['ssh', 'hello-node', '--instance', '7', '--', 'true'], home), /no running or crashed instance 7 of hello-node/, 'an unknown instance');
  const api = `http://127.0.0.1:${ports.api}`;
  t.equal((await skiff(['add-user', 'bob@example.com', '--password', 'bob-secret-1'], home)).code, 0, 'admin adds bob');
  const bob = tempHome(t);
  t.equal((await skiff(['target', api], bob)).code, 0);
  t.equal((await skiff(['login', '--email', 'bob@example.com', '--password', 'bob-secret-1'], bob)).code, 0, 'bob logs in');
  oneLine(t, await skiff(['ssh', 'hello-node', '--', 'id'], bob), /belongs to another user/, 'bob cannot ssh into the admin\'s app');
  oneLine(t, await skiff(['ssh', 'hello-node', '--group', 'bob@example.com', '--', 'id'], bob), /unknown app "hello-node"/, 'nor by naming himself as the group');
  const admin = JSON.parse((await get({ port: ports.api, path: '/info', headers: auth })).body.toString()).user as string;
  oneLine(t, await skiff(['ssh', 'hello-node', '--group', admin, '--', 'id'], bob), /only an admin/, 'nor act as the admin');
  const plain = await get({ port: ports.api, path: '/apps/hello-node/instances/0/ssh', headers: auth });
  t.equal(plain.status, 400, 'a GET without an upgrade: 400');
  t.match(JSON.parse(plain.body.toString()).description, /WebSocket/);

  // --- an interactive shell on a terminal ---
  const shell = await skiffOnTerminal(['ssh', 'hello-node'], home, [['$ ', 'echo $((6*7))'], ['\n42', 'exit']]);
  if (shell === undefined) t.comment('util-linux script not installed: no terminal test');
  else {
    t.equal(shell.code, 0, `exit ends the session (${shell.stderr.trim()})`);
    t.match(shell.stdout, /\n42\r*\n/, 'the shell answered 42');
  }

  // --- output in many chunks arrives whole and in order ---
  const counted = await skiff(['ssh', 'hello-node', '--', 'seq', '1', '200000'], home);
  t.equal(counted.code, 0);
  const expected = Array.from({ length: 200000 }, (_, i) => `${i + 1}\n`).join('');
  t.ok(counted.stdout === expected, `1.3 MB of output, byte for byte (${counted.stdout.length} of ${expected.length} characters)`);

  // --- at most 4 sessions per instance; a client that goes away takes its session along ---
  const sleepers = [0, 1, 2, 3].map(() => spawnSkiff(['ssh', 'hello-node', '--', 'sleep', '301'], home));
  const sleepersDone = sleepers.map((child) => finish(child, 60_000));
  await eventually(() => processesRunning(['sleep', '301']).length === 4, 'four sleeping sessions', 15_000);
  oneLine(t, await skiff(['ssh', 'hello-node', '--', 'true'], home), /4 ssh sessions already/, 'a fifth session is refused');
  for (const child of sleepers) child.kill('SIGKILL');
  await Promise.all(sleepersDone);
  await eventually(() => processesRunning(['sleep', '301']).length === 0, 'the sessions of the killed clients to end', 10_000);

  // --- the events record who had a shell ---
  const history = JSON.parse((await get({ port: ports.api, path: '/apps/hello-node/events', headers: auth })).body.toString()) as Array<{ type: string; actor: string }>;
  t.ok(history.some((e) => e.type === 'ssh' && e.actor === admin), 'ssh sessions are in the app\'s history');

  // --- stopping the app ends its sessions, and says so ---
  const waiting = spawnSkiff(['ssh', 'hello-node', '--', 'sleep', '302'], home);
  const waited = finish(waiting, 30_000);
  await eventually(() => processesRunning(['sleep', '302']).length === 1, 'a sleeping session', 15_000);
  t.equal((await skiff(['stop', 'hello-node'], home)).code, 0, 'stop hello-node');
  const ended = await waited;
  t.equal(ended.code, 129, 'the session was hung up (128 + SIGHUP)');
  t.match(ended.stderr, /the instance stopped/, 'and the CLI says why');
  t.same(processesRunning(['sleep', '302']), [], 'its process is gone');

  t.equal(await platform.stop(30_000), 0, 'skiff up exits 0');
  await sleep(500);
  t.same([...platform.seen].filter(isAlive), [], 'no role, app or session process outlives skiff up');
});
