// Two nodes on one host (loopback, their own ports and data dirs): the first
// node's `join:` token lets a second node join with a nats-server of its
// own and a DEA. The first node's JetStream data moves into the cluster
// (the app pushed before the join is still there), the new DEA takes
// instances, `skiff node info` and `skiff role` reach the new node, and a
// bad token is refused with one line. The cluster in network namespaces
// (three hosts, failures) is test/cluster/, run by `npm run test:cluster`.

import * as http from 'node:http';
import { freePort } from '../harness';
import { join } from 'node:path';
import t from 'tap';
import { decodeJoinToken, encodeJoinToken } from '../../cli/node/token';
import { skiff, tempHome } from '../cli_harness';
import { eventually } from '../harness';
import { platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';

const EXAMPLES = join(__dirname, '..', '..', 'examples');

function answer(port: number, host: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk));
      res.on('end', () => resolve(`${res.statusCode} ${body.trim()}`));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve('error'));
  });
}

t.test('a second node joins with a nats-server and a DEA', async (t) => {
  const home = tempHome(t);
  const ports = await platformPorts();
  const clusterPort = await freePort();
  const first = startSkiffTree(t, [...upArgs(platformDataDir(t, 'skiff-node1-'), ports), '--node', 'node1', '--cluster-port', String(clusterPort)], home, 300_000);
  await eventually(() => /^node: node1 /m.test(first.out()), 'the first node to be ready', 60_000);
  const joinLine = /^join: skiff up --join (\S+)$/m.exec(first.out());
  t.ok(joinLine, 'the first node prints its join: line');
  const token = joinLine![1]!;

  const pushed = await skiff(['push', join(EXAMPLES, 'hello-node')], home);
  t.equal(pushed.code, 0, pushed.stderr);

  // Bad tokens: one line each, nothing started.
  const damaged = await skiff(['up', '--data-dir', platformDataDir(t, 'skiff-bad-'), '--join', 'skiff1-nonsense'], tempHome(t));
  t.equal(damaged.code, 2);
  t.equal(damaged.stderr, 'skiff up: --join is damaged: copy the whole join: line again\n');
  const wrong = encodeJoinToken({ ...decodeJoinToken(token), pass: 'not-the-password' });
  const refused = await skiff(['up', '--data-dir', platformDataDir(t, 'skiff-refused-'), '--node', 'nodex', '--nats-port', String(await freePort())], tempHome(t), { SKIFF_UP_JOIN: wrong });
  t.equal(refused.code, 1);
  t.match(refused.stderr, /^skiff up: cannot join: NATS at nats:\/\/127\.0\.0\.1:\d+ refused user node from the join token \(authorization violation\)\n$/m);
  t.notMatch(refused.stderr, /not-the-password/);

  const secondPorts = { nats: await freePort(), cluster: await freePort() };
  const block = 62000 + Math.floor(Math.random() * 10) * 100;
  const second = startSkiffTree(
    t,
    [
      'up', '--data-dir', platformDataDir(t, 'skiff-node2-'), '--node', 'node2', '--roles', 'dea', '--nats-server',
      '--nats-port', String(secondPorts.nats), '--cluster-port', String(secondPorts.cluster), '--app-ports', `${block}-${block + 99}`,
    ],
    tempHome(t),
    300_000,
    { SKIFF_UP_JOIN: token },
  );
  await eventually(() => /^node: node2 \(dea, nats-server\)$/m.test(second.out()), 'the second node to join and be ready', 90_000);
  t.notOk((second.out() + second.err() + first.err()).includes(decodeJoinToken(token).pass), 'the node password appears in no log');
  await eventually(() => /the cluster has formed/.test(first.err()), 'the first node to move its data into the cluster', 60_000);

  // What the first node held before it became part of the cluster is still there.
  await eventually(async () => (await skiff(['apps'], home)).stdout.includes('hello-node'), 'the app is still known', 30_000);
  await eventually(async () => (await answer(ports.router, 'hello-node.localhost')).startsWith('200 '), 'hello-node answers', 30_000);

  // The new DEA takes instances: with two, each DEA gets one (once the controller has heard it advertise, every 5 s).
  await eventually(() => /dea-0: DEA ready/.test(second.err()), 'node2\'s DEA to be ready', 30_000);
  await new Promise((resolve) => setTimeout(resolve, 6000));
  t.equal((await skiff(['scale', 'hello-node', '--instances', '2'], home)).code, 0);
  const addresses = (await skiff(['app', 'hello-node'], home)).stdout;
  const ports2 = [...addresses.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
  t.ok(ports2.some((p) => p >= block && p <= block + 99), `an instance runs on node2's DEA (ports ${ports2.join(', ')})`);

  // The second node answers role requests through the controller.
  const info = await skiff(['node', 'info', '--node', 'node2'], home);
  t.equal(info.code, 0, info.stderr);
  t.match(info.stdout, /^roles:\s+dea$/m);
  t.match(info.stdout, /^nats:\s+serves NATS for the cluster$/m);
  const added = await skiff(['role', 'add', 'health', '--node', 'node2'], home);
  t.equal(added.code, 0, added.stderr);
  t.match(added.stdout, /^roles:\s+dea, health$/m);
  await eventually(() => /health: health manager running/.test(second.err()), 'node2 runs a health manager', 30_000);
  const removed = await skiff(['role', 'remove', 'health', '--node', 'node2'], home);
  t.equal(removed.code, 0, removed.stderr);
  t.match(removed.stdout, /^roles:\s+dea$/m);
  t.equal((await skiff(['node', 'info', '--node', 'node3'], home)).code, 1, 'an unknown node is one line');
});
