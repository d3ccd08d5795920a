// The whole platform as a user meets it: `skiff up` on free ports and a temp
// data dir, every example pushed with the CLI and reached through the router,
// two instances answering in turn, a WebSocket chat through the router,
// scaling, stopping (the route answers 404), a second `skiff up` on the same
// data dir bringing the started apps back, deleting, a second user who can
// neither see nor touch the first user's apps, and clear errors for bad
// uploads and bad requests, and, as root, each app its own uid. Every
// process is ended by pid.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { WebSocket } from 'ws';
import { skiff, tempHome } from '../cli_harness';
import { eventually, isAlive, sleep } from '../harness';
import { platformDataDir, platformPorts, startSkiffTree, upArgs, type PlatformPorts, type SkiffTree } from '../platform_harness';

const EXAMPLES = join(__dirname, '..', '..', 'examples');

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, host: string, path = '/', init: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer | string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers: { host, ...init.headers }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

async function up(t: tap.Test, dataDir: string, home: string, ports: PlatformPorts): Promise<SkiffTree> {
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 240_000);
  await eventually(() => platform.out().includes('router: '), 'skiff up to print its router line', 60_000);
  return platform;
}

async function run(t: tap.Test, home: string, args: string[], description: string): Promise<string> {
  const result = await skiff(args, home);
  t.equal(result.code, 0, `${description} (stderr: ${result.stderr.trim().split('\n').slice(-3).join(' | ')})`);
  return result.stdout;
}

async function indicesAnswering(port: number, host: string, requests: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < requests; i++) {
    const reply = await request(port, host);
    const m = /instance (\d+)/.exec(reply.body);
    seen.push(reply.status === 200 && m ? m[1]! : `status ${reply.status}`);
  }
  return seen;
}

t.test('push, reach, scale, stop, restart, delete: the platform end to end', async (t) => {
  const dataDir = platformDataDir(t, 'skiff-e2e-');
  const home = tempHome(t);
  const ports = await platformPorts();
  const api = `http://127.0.0.1:${ports.api}`;

  let platform = await up(t, dataDir, home, ports);
  t.match(platform.out(), /^login: SKIFF_PASSWORD=\S+ skiff login --email \S+$/m, 'the first start prints the admin login');
  t.match(platform.out(), `api: ${api}`);

  // --- hello-node, two instances answering in turn ---
  const pushed = await run(t, home, ['push', join(EXAMPLES, 'hello-node'), '--instances', '2'], 'push hello-node');
  t.match(pushed, `http://hello-node.localhost:${ports.router}/`, 'push prints the URL');
  t.match(pushed, /Detected Node\.js/, 'the staging log streamed to the CLI');
  const turns = await indicesAnswering(ports.router, 'hello-node.localhost', 4);
  t.same(new Set(turns), new Set(['0', '1']), `both instances answer (${turns})`);
  t.not(turns[0], turns[1], 'in turn');

  // --- the other examples ---
  await run(t, home, ['push', join(EXAMPLES, 'static-site')], 'push static-site');
  const page = await request(ports.router, 'static-site.localhost');
  t.equal(page.status, 200);
  t.match(page.body, /<html/i, 'the static site serves its index.html');
  const css = await request(ports.router, 'static-site.localhost', '/style.css');
  t.match(css.headers['content-type'] ?? '', /^text\/css/, 'with Content-Types');

  await run(t, home, ['push', join(EXAMPLES, 'hello-python')], 'push hello-python');
  t.match((await request(ports.router, 'hello-python.localhost')).body, /Hello from hello-python/);

  await run(t, home, ['push', join(EXAMPLES, 'chat-ws')], 'push chat-ws');
  t.match((await request(ports.router, 'chat-ws.localhost')).body, /<html/i, 'the chat page');
  const said = await new Promise<string>((resolve, reject) => {
    const open = (): WebSocket => new WebSocket(`ws://127.0.0.1:${ports.router}/chat`, { headers: { host: 'chat-ws.localhost' } });
    const alice = open();
    const bob = open();
    let ready = 0;
    // Says how far it got: a failure here once (CI, busy machine) did not say whether both sockets had opened.
    const timer = setTimeout(() => reject(new Error(`no chat message within 10 s (${ready} of 2 WebSockets open${ready === 2 ? ', message sent' : ''})`)), 10_000);
    const go = (): void => {
      if (++ready === 2) alice.send('hello from alice');
    };
    alice.on('open', go);
    bob.on('open', go);
    alice.on('error', reject);
    bob.on('error', reject);
    bob.on('message', (data) => {
      clearTimeout(timer);
      alice.close();
      bob.close();
      resolve(data.toString());
    });
  });
  t.match(said, /hello from alice/, 'a chat message crosses the router over WebSockets');

  // --- bad input gets clear errors ---
  const empty = join(dataDir, 'nothing-to-run');
  mkdirSync(empty);
  writeFileSync(join(empty, 'README.txt'), 'no app here\n');
  const failed = await skiff(['push', empty, '--name', 'nothing'], home);
  t.not(failed.code, 0, 'a push that cannot stage fails');
  t.match(failed.stderr + failed.stdout, /no start command/, 'and says why');
  const token = JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')).token as string;
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const garbage = await request(ports.api, 'api.localhost', '/apps/hello-node/application', { method: 'PUT', headers: auth, body: 'not an archive' });
  t.equal(garbage.status, 415, 'an upload that is neither zip nor tar.gz: 415');
  t.match(JSON.parse(garbage.body).description, /zip|tar/, 'with a description');
  const badName = await request(ports.api, 'api.localhost', '/apps', { method: 'POST', headers: auth, body: JSON.stringify({ name: 'Bad Name!' }) });
  t.equal(badName.status, 400, 'a bad app name: 400');
  t.type(JSON.parse(badName.body).description, 'string');
  t.match((await skiff(['scale', 'hello-node', '--instances', 'many'], home)).stderr, /--instances/, 'a bad number: one clear line');
  t.equal((await request(ports.router, 'hello-node.localhost')).status, 200, 'hello-node still runs after the bad upload');

  // --- each app its own uid, even two of one user; none can list the data dir ---
  if (process.getuid?.() === 0) {
    const uidOf = async (app: string) => (await skiff(['ssh', app, '--', 'id', '-u'], home)).stdout.trim();
    const [nodeUid, pythonUid] = [await uidOf('hello-node'), await uidOf('hello-python')];
    t.match(nodeUid, /^\d+$/, `hello-node runs as uid ${nodeUid}`);
    t.not(nodeUid, pythonUid, `two apps of one user, two uids (${nodeUid}, ${pythonUid})`);
    const look = await skiff(['ssh', 'hello-node', '--', 'ls', dataDir], home);
    t.not(look.code, 0, 'an app cannot list the data dir');
    t.match(look.stderr, /Permission denied/);
  }

  // --- a second user sees and touches nothing of the first's ---
  await run(t, home, ['add-user', 'bob@example.com', '--password', 'bob-secret-1'], 'admin adds a user');
  const bob = tempHome(t);
  await run(t, bob, ['target', api], 'bob targets the API');
  await run(t, bob, ['login', '--email', 'bob@example.com', '--password', 'bob-secret-1'], 'bob logs in');
  t.same(JSON.parse(await run(t, bob, ['apps', '--json'], 'bob lists apps')), [], 'bob sees no apps');
  const touch = await skiff(['stop', 'hello-node'], bob);
  t.not(touch.code, 0, 'bob cannot stop the admin\'s app');
  t.equal(touch.stderr.trim().split('\n').length, 1, `one line: ${touch.stderr.trim()}`);
  t.equal((await request(ports.router, 'hello-node.localhost')).status, 200, 'and it still runs');

  // --- scale up and down ---
  await run(t, home, ['scale', 'hello-node', '--instances', '3'], 'scale to 3');
  await eventually(async () => (await indicesAnswering(ports.router, 'hello-node.localhost', 6)).includes('2'), 'a third instance to answer', 30_000);
  await run(t, home, ['scale', 'hello-node', '--instances', '1'], 'scale to 1');
  await eventually(async () => (await indicesAnswering(ports.router, 'hello-node.localhost', 6)).every((i) => i === '0'), 'only instance 0 to answer', 30_000);

  // --- a rolling restart: a client polling meanwhile sees no error ---
  const polled: number[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      polled.push((await request(ports.router, 'hello-node.localhost')).status);
      await sleep(20);
    }
  })();
  await run(t, home, ['restart', 'hello-node'], 'restart hello-node');
  await sleep(1000);
  polling = false;
  await poller;
  t.ok(polled.length > 20, `the client polled throughout (${polled.length} requests)`);
  t.same([...new Set(polled)], [200], 'no failed request during the rolling restart');

  // --- stop: the route goes ---
  await run(t, home, ['stop', 'static-site'], 'stop static-site');
  const stoppedAt = Date.now();
  await eventually(async () => (await request(ports.router, 'static-site.localhost')).status === 404, 'the stopped app\'s route to answer 404', 15_000);
  // The route answers 503 for --empty-pool-timeout (5 s) after its last instance left, then 404.
  const after = Date.now() - stoppedAt;
  t.ok(after < 10_000, `404 within a few seconds (${after} ms)`);

  // --- a second skiff up on the same data dir ---
  t.equal(await platform.stop(), 0, 'skiff up exits 0 on SIGTERM');
  await sleep(500);
  const leftovers = [...platform.seen].filter(isAlive);
  t.same(leftovers, [], 'no role or app process outlives skiff up');
  platform = await up(t, dataDir, home, ports);
  t.notMatch(platform.out(), /^login:/m, 'the admin is not created twice');
  await eventually(async () => (await request(ports.router, 'hello-node.localhost')).status === 200, 'hello-node to run again after the restart', 60_000);
  t.equal((await request(ports.router, 'static-site.localhost')).status, 404, 'the stopped app stays stopped');
  await eventually(async () => (await request(ports.router, 'hello-python.localhost')).status === 200, 'hello-python to run again', 30_000);

  // --- the app's history ---
  const history = JSON.parse(await run(t, home, ['events', 'hello-node', '--json'], 'events of hello-node')) as Array<{ type: string; actor: string }>;
  const types = history.map((e) => e.type);
  for (const type of ['created', 'pushed', 'staged', 'started', 'scaled', 'restarted']) t.ok(types.includes(type), `events include ${type} (${types.join(', ')})`);
  t.ok(history.some((e) => e.type === 'staged' && e.actor === 'platform'), 'staging is the platform\'s doing');
  t.notOk(history.some((e) => e.actor.startsWith('bob')), 'bob\'s refused attempt left no event');
  t.match((await run(t, home, ['events', 'hello-node'], 'events table')).split('\n')[0], /^TIME\s+EVENT\s+BY\s+DESCRIPTION/, 'as a table');

  // --- delete ---
  await run(t, home, ['delete', 'hello-node', '--force'], 'delete hello-node');
  await eventually(async () => (await request(ports.router, 'hello-node.localhost')).status === 404, 'the deleted app\'s route to answer 404', 15_000);
  const names = (JSON.parse(await run(t, home, ['apps', '--json'], 'list apps')) as Array<{ name: string }>).map((a) => a.name).sort();
  t.same(names, ['chat-ws', 'hello-python', 'static-site'], 'hello-node is gone from the list (and the failed first push of nothing left no app)');

  t.equal(await platform.stop(), 0, 'skiff up exits 0 again');
  await sleep(500);
  t.same([...platform.seen].filter(isAlive), [], 'nothing left running');
});
