// What a new user meets in the first minutes, on a real platform (`skiff up`
// on free ports and a temp data dir): hello-node pushed with 64 MB runs as
// `node server.js`, with no npm in its process tree or its logs, well under
// its limit; and after a platform restart every example answers again within
// a few seconds of the others, the static site included.

import * as http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { skiff, tempHome } from '../cli_harness';
import { eventually, sleep } from '../harness';
import { descendants, platformDataDir, platformPorts, startSkiffTree, upArgs, type PlatformPorts } from '../platform_harness';

const EXAMPLES = join(__dirname, '..', '..', 'examples');
const EXAMPLE_NAMES = ['chat-ws', 'hello-node', 'hello-python', 'static-site'];

function status(port: number, host: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** MB of resident memory `skiff stats` shows for index 0 (the DEA's measure, the one it kills by). */
function statsMemoryMb(stdout: string): number | undefined {
  const match = /^0\s+RUNNING\s+\S+\s+([\d.]+)([KMG])/m.exec(stdout);
  if (match === null) return undefined;
  return Number(match[1]) * { K: 1 / 1024, M: 1, G: 1024 }[match[2] as 'K' | 'M' | 'G'];
}

function up(t: tap.Test, dataDir: string, home: string, ports: PlatformPorts) {
  // A find window this long makes a reconcile pass that asks about the apps
  // one after another show: each app would come back 2 s after the one
  // before it in name order, the static site last.
  return startSkiffTree(t, upArgs(dataDir, ports), home, 240_000, { SKIFF_CONTROLLER_FIND_WINDOW_MS: '2000' });
}

t.test('the first minutes: a 64 MB hello-node, and every example back soon after a restart', async (t) => {
  const dataDir = platformDataDir(t, 'skiff-first-');
  const home = tempHome(t);
  const ports = await platformPorts();
  let platform = up(t, dataDir, home, ports);
  await eventually(() => /^api: /m.test(platform.out()) && /^router: /m.test(platform.out()), 'skiff up to be ready', 60_000);

  const pushed = await skiff(['push', join(EXAMPLES, 'hello-node'), '--memory', '64'], home);
  t.equal(pushed.code, 0, `hello-node runs with 64 MB (${pushed.stderr.trim().split('\n').slice(-3).join(' | ')})`);
  t.match(pushed.stdout, /Start command: node server\.js\n/, 'the start script itself, without npm');
  t.equal(await status(ports.router, 'hello-node.localhost'), 200, 'it answers through the router');

  const tree = descendants(platform.pid).map(commandLine);
  t.ok(tree.some((line) => line === 'node server.js'), 'the app runs as node server.js');
  t.same(tree.filter((line) => /^(\S*\/)?npm\b/.test(line)), [], 'no npm process in the platform\'s tree');

  let memory: number | undefined;
  await eventually(async () => {
    memory = statsMemoryMb((await skiff(['stats', 'hello-node'], home)).stdout);
    return memory !== undefined && memory > 0;
  }, 'skiff stats to show the instance\'s memory', 20_000);
  t.ok(memory! < 54, `resident memory well under 64 MB: ${memory} MB`);
  // The DEA measures every 2 s: a few more measurements, and it still runs.
  await sleep(5000);
  const after = await skiff(['stats', 'hello-node'], home);
  t.match(after.stdout, /^0\s+RUNNING\s/m, 'still running after several measurements');
  t.notMatch((await skiff(['crashes', 'hello-node'], home)).stdout, /out of memory/, 'never killed over its limit');
  const logs = await skiff(['logs', 'hello-node'], home);
  t.match(logs.stdout, /hello-node instance 0 listening on \d+/);
  t.notMatch(logs.stdout + logs.stderr, /npm/i, 'nothing of npm in its logs (no banner, no update notice)');

  for (const name of EXAMPLE_NAMES.filter((n) => n !== 'hello-node')) {
    const result = await skiff(['push', join(EXAMPLES, name)], home);
    t.equal(result.code, 0, `push ${name}`);
  }

  t.equal(await platform.stop(), 0, 'skiff up stops');
  platform = up(t, dataDir, home, ports);
  const startedAt = Date.now();
  const answeredAfter = new Map<string, number>();
  await eventually(async () => {
    for (const name of EXAMPLE_NAMES) {
      if (!answeredAfter.has(name) && (await status(ports.router, `${name}.localhost`)) === 200) answeredAfter.set(name, (Date.now() - startedAt) / 1000);
    }
    return answeredAfter.size === EXAMPLE_NAMES.length;
  }, 'every example to answer after the restart', 60_000).catch(() => {});
  const times = Object.fromEntries(EXAMPLE_NAMES.map((name) => [name, answeredAfter.get(name)]));
  t.comment(`seconds until each answered after the restart: ${JSON.stringify(times)}`);
  for (const name of EXAMPLE_NAMES) t.ok((answeredAfter.get(name) ?? Infinity) < 8, `${name} answers within 8 s of the restart (${answeredAfter.get(name)} s)`);
  const nodeApps = Math.max(answeredAfter.get('hello-node') ?? Infinity, answeredAfter.get('chat-ws') ?? Infinity);
  t.ok((answeredAfter.get('static-site') ?? Infinity) <= nodeApps + 3, 'the static site comes back with the Node.js apps, not seconds after them');
  t.equal(await platform.stop(), 0);
});
