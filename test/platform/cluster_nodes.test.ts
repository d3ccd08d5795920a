// `skiff nodes` on a real platform (`skiff up`, its NATS users and
// permissions): every role announces itself and answers discovery, a second
// node's router joins the list, a node supervisor's announcement gives its
// roles, a node that stops answering shows as down within the node timeout,
// and it is still listed once the controller has restarted (the
// skiff_nodes bucket remembers it).

import t from 'tap';
import { readFileSync } from 'node:fs';
import { Subjects } from '../../bus/subjects';
import { skiff, SKIFF_BIN, tempHome } from '../cli_harness';
import { eventually, freePort, isAlive, spawnTracked, terminate } from '../harness';
import { descendants, platformBus, platformCredentials, platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';

interface NodeJson {
  node: string;
  host: string;
  roles: string[];
  uptime: number | null;
  state: string;
  last_seen: number;
  components: Array<{ type: string; state: string }>;
}

async function nodes(home: string): Promise<NodeJson[]> {
  const run = await skiff(['nodes', '--json'], home);
  if (run.code !== 0) throw new Error(`skiff nodes: ${run.stderr}`);
  return JSON.parse(run.stdout) as NodeJson[];
}

t.test('skiff nodes: every role, other nodes, down, remembered', async (t) => {
  const dataDir = platformDataDir(t, 'skiff-nodes-');
  const home = tempHome(t);
  const ports = await platformPorts();
  // 3 s instead of 40 so the test sees "down" quickly; the mechanism is the same.
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 170_000, { SKIFF_NODE: 'core-1', SKIFF_CONTROLLER_NODE_TIMEOUT: '3' });
  await eventually(() => platform.out().includes('api: '), 'the platform to be up', 60_000);

  await t.test('one node runs all six roles, each announcing itself', async (t) => {
    await eventually(async () => (await nodes(home)).find((n) => n.node === 'core-1')?.components.length === 7, 'every role of core-1 to answer', 20_000);
    const [core] = await nodes(home);
    t.same(core!.roles, ['controller', 'dea', 'health', 'nats-server', 'router', 'services', 'stager'], 'the roles its supervisor (a Node) was given, and its nats-server');
    t.equal(core!.state, 'running');
    t.ok(core!.uptime !== null && core!.uptime >= 0);
    t.same(core!.components.map((c) => c.type).sort(), ['CloudController', 'DEA', 'HealthManager', 'Node', 'Router', 'ServicesNode', 'Stager']);
    const table = await skiff(['nodes'], home);
    t.equal(table.code, 0, table.stderr);
    t.match(table.stdout, /^NODE\s+HOST\s+ROLES\s+UPTIME\s+STATE\n/);
    t.match(table.stdout, /^core-1\s+\S+\s+controller,dea,health,nats-server,router,services,stager\s+\d+d:\d+h:\d+m:\d+s\s+running$/m);
  });

  const statusPort = await freePort();
  const edge = spawnTracked(process.execPath, [
    SKIFF_BIN, 'router', '--node', 'edge-1', '--port', String(await freePort()), '--status-port', String(statusPort), '--status-host', '127.0.0.1',
    '--nats', `nats://127.0.0.1:${ports.nats}`, '--start-delay', '0',
  ], { stdio: 'ignore', env: { ...process.env, SKIFF_NATS_CREDENTIALS: platformCredentials(dataDir, 'router') } });
  t.teardown(() => terminate(edge, 2000));

  await t.test("another node's router, and a node supervisor's announcement", async (t) => {
    // A stand-in for the node supervisor of `skiff up --join`, which announces type Node with its roles.
    const operator = await platformBus(t, dataDir, 'test-supervisor');
    const supervisor = { type: 'Node', index: 0, uuid: 'node-big-1', host: '192.0.2.7', node: 'big-1', roles: ['router', 'dea'], start: new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z'), uptime: '0d:1h:0m:0s' };
    const sub = operator.subscribe(Subjects.componentDiscover, (msg) => msg.respond(supervisor));
    t.teardown(() => sub.unsubscribe());
    operator.publish(Subjects.componentAnnounce, supervisor);
    await eventually(async () => (await nodes(home)).some((n) => n.node === 'edge-1' && n.state === 'running'), 'edge-1 to show', 20_000);
    const list = await nodes(home);
    t.same(list.map((n) => n.node), ['big-1', 'core-1', 'edge-1'], 'sorted by name');
    const edgeNode = list.find((n) => n.node === 'edge-1')!;
    t.same(edgeNode.roles, ['router']);
    t.equal(edgeNode.host, '127.0.0.1', 'the address its router announces');
    const big = list.find((n) => n.node === 'big-1')!;
    t.same(big.roles, ['dea', 'router'], 'the roles the supervisor was given');
    t.equal(big.host, '192.0.2.7');
    t.ok(big.uptime! >= 3600, 'uptime of the node, not of a role');
  });

  await t.test('a node that stops answering shows as down within the timeout', async (t) => {
    process.kill(edge.pid!, 'SIGKILL');
    const killedAt = Date.now();
    await eventually(async () => (await nodes(home)).find((n) => n.node === 'edge-1')?.state === 'down', 'edge-1 down', 30_000);
    const took = Date.now() - killedAt;
    t.ok(took < 15_000, `down after ${took} ms (node timeout 3 s)`);
    const table = await skiff(['nodes'], home);
    t.match(table.stdout, /^edge-1\s+127\.0\.0\.1\s+router\s+-\s+down \(last seen \d+s ago\)$/m);
    t.equal((await nodes(home)).find((n) => n.node === 'core-1')!.state, 'running', 'the others are not affected');
  });

  await t.test('after a controller restart the down node is still listed', async (t) => {
    const controllerPid = descendants(platform.pid).find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('controller');
      } catch {
        return false;
      }
    });
    t.ok(controllerPid !== undefined, 'the controller process');
    process.kill(controllerPid!, 'SIGKILL');
    await eventually(() => !isAlive(controllerPid!), 'the old controller gone');
    // skiff up restarts it; the new one never heard edge-1 and finds it in skiff_nodes.
    await eventually(async () => {
      const list = await nodes(home).catch(() => []);
      return list.some((n) => n.node === 'edge-1' && n.state === 'down') && list.some((n) => n.node === 'core-1' && n.roles.length === 7);
    }, 'the new controller to list edge-1 as down', 30_000);
    t.pass('edge-1 is remembered as down');
  });

  t.equal(await platform.stop(), 0, 'the platform stops cleanly');
});
