// The bus permission table (bus/permissions.ts) on a real nats-server
// configured as `skiff up` configures it: for every role, a publish of its
// job goes through and one of another role's job is refused, logged and
// counted without ending the connection; anonymous clients are refused.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectBus, requestAll, type Bus, type BusEvent } from '../bus/connection';
import { silentLogger } from '../bus/log';
import { NATS_ROLES, OPERATOR_USER, permissionTable, type NatsRole } from '../bus/permissions';
import { APPS_BUCKET, ObjectStores } from '../bus/platform';
import { captureLog, eventually, sleep, type TeardownHost } from './harness';
import { skiff, tempHome } from './cli_harness';
import { startSecuredNats, type SecuredNats } from './secured_nats';

async function connectAs(t: TeardownHost, nats: SecuredNats, user: NatsRole | typeof OPERATOR_USER) {
  const { logger, lines } = captureLog(user);
  const events: Array<[BusEvent, string | undefined]> = [];
  const bus = await connectBus({
    servers: nats.server.url,
    name: `test-${user}`,
    logger,
    auth: { user, pass: nats.password[user], origin: 'the test' },
  });
  bus.onEvent((event, detail) => events.push([event, detail]));
  t.teardown(() => bus.close());
  return { bus, lines, events };
}

/** Subjects the operator (who may see everything) received within a short while. */
async function heardBy(operator: Bus, subject: string, send: () => Promise<void>): Promise<number> {
  let count = 0;
  const sub = operator.subscribe(subject, () => count++);
  await operator.flush();
  await send();
  await sleep(150);
  sub.unsubscribe();
  return count;
}

// One publish each role's job needs, and one that belongs to another role.
const CASES: Record<NatsRole, { allowed: string; refused: string; why: string }> = {
  router: { allowed: 'router.start', refused: 'router.register', why: 'routes come from DEAs and the controller' },
  controller: { allowed: 'dea.0c4f.start', refused: 'dea.heartbeat', why: 'only DEAs report instances' },
  stager: { allowed: 'staging.app1.log', refused: 'router.register', why: 'a build cannot route traffic' },
  dea: { allowed: 'router.register', refused: 'dea.0c4f.ssh', why: 'only the controller opens shells in instances' },
  health: { allowed: 'cloudcontrollers.hm.requests', refused: 'dea.0c4f.start', why: 'only the controller places instances' },
  services: { allowed: 'vcap.component.announce', refused: 'services.node-2.bind', why: 'only the controller binds service instances (a node could ask another for credentials)' },
  node: { allowed: 'skiff.node.credentials', refused: 'router.register', why: 'a node supervisor routes no traffic itself' },
};

t.test('every role may publish its job and is refused another role\'s, never disconnected', async (t) => {
  const nats = await startSecuredNats(t);
  const { bus: operator } = await connectAs(t, nats, OPERATOR_USER);
  for (const role of NATS_ROLES) {
    const { allowed, refused, why } = CASES[role];
    const { bus, lines, events } = await connectAs(t, nats, role);
    t.equal(await heardBy(operator, allowed, async () => {
      bus.publish(allowed, { from: role });
      await bus.flush();
    }), 1, `${role} publishes ${allowed}`);
    t.equal(await heardBy(operator, refused, async () => {
      bus.publish(refused, { from: role });
      await bus.flush();
    }), 0, `${role} cannot publish ${refused}: ${why}`);
    await eventually(() => bus.permissionViolations === 1, `${role}: the refusal is counted`);
    t.ok(lines.some((line) => line.includes('permission violation') && line.includes(refused)), `${role}: the refusal is logged with its subject`);
    t.ok(events.some(([event, detail]) => event === 'permission-violation' && detail === `publish ${refused}`));
    t.ok(bus.isConnected(), `${role} stays connected`);
    t.equal(await heardBy(operator, allowed, async () => {
      bus.publish(allowed, { again: true });
      await bus.flush();
    }), 1, `${role} keeps working after the refusal`);
  }
});

t.test('subscriptions: no role reads another role\'s work or replies', async (t) => {
  const nats = await startSecuredNats(t);
  const { bus: operator } = await connectAs(t, nats, OPERATOR_USER);
  const { bus: dea } = await connectAs(t, nats, 'dea');
  const { bus: router } = await connectAs(t, nats, 'router');
  // A DEA that subscribed to the stagers' queue would take staging jobs; a
  // router on _INBOX.> would read every reply, the controller's included.
  const stolen: string[] = [];
  dea.subscribe('vcap.stager.default', (msg) => stolen.push(msg.subject));
  router.subscribe('_INBOX.>', (msg) => stolen.push(msg.subject));
  router.subscribe('_INBOX.controller.>', (msg) => stolen.push(msg.subject));
  await eventually(() => dea.permissionViolations === 1 && router.permissionViolations === 2, 'the subscriptions are refused');
  operator.publish('vcap.stager.default', { job: 1 });
  operator.publish('_INBOX.controller.abc', { reply: 1 });
  await operator.flush();
  await sleep(150);
  t.same(stolen, [], 'nothing reached them');
  t.ok(dea.isConnected() && router.isConnected());
});

t.test('requests: a DEA answers the controller many times over; the controller\'s replies come to its own inbox', async (t) => {
  const nats = await startSecuredNats(t);
  const { bus: controller } = await connectAs(t, nats, 'controller');
  const { bus: dea } = await connectAs(t, nats, 'dea');
  // dea.find.droplet: one reply per matching instance.
  dea.subscribe('dea.find.droplet', (msg) => {
    for (let i = 0; i < 3; i++) msg.respond({ index: i });
  });
  await dea.flush();
  const replies = await requestAll<{ index: number }>(controller, 'dea.find.droplet', {}, { windowMs: 300 });
  t.same(replies.map((r) => r.index).sort(), [0, 1, 2]);
  t.equal(dea.permissionViolations + controller.permissionViolations, 0);
});

t.test('components: the controller asks every role to describe itself and hears their announcements; only it may ask', async (t) => {
  const nats = await startSecuredNats(t);
  const { bus: controller } = await connectAs(t, nats, 'controller');
  const heard: string[] = [];
  controller.subscribe('vcap.component.announce', (msg) => heard.push(JSON.parse(new TextDecoder().decode(msg.data)).type));
  await controller.flush();
  const others: Bus[] = [];
  for (const role of NATS_ROLES.filter((r) => r !== 'controller')) {
    const { bus } = await connectAs(t, nats, role);
    bus.subscribe('vcap.component.discover', (msg) => msg.respond({ type: role }));
    bus.publish('vcap.component.announce', { type: role });
    await bus.flush();
    others.push(bus);
  }
  const replies = await requestAll<{ type: string }>(controller, 'vcap.component.discover', {}, { windowMs: 300 });
  t.same(replies.map((r) => r.type).sort(), ['dea', 'health', 'node', 'router', 'services', 'stager'], 'the node supervisors answer too');
  await eventually(() => heard.length === 6, 'every announcement reaches the controller');
  t.equal(controller.permissionViolations, 0);
  const { bus: dea } = await connectAs(t, nats, 'dea');
  dea.publish('vcap.component.discover', {});
  await eventually(() => dea.permissionViolations === 1, 'a DEA may not ask (nor make every role answer it)');
  t.ok(others.every((bus) => bus.permissionViolations === 0));
});

t.test('JetStream: each role reaches only the buckets of its job', async (t) => {
  const nats = await startSecuredNats(t);
  const { bus: controller } = await connectAs(t, nats, 'controller');
  const js = controller.nats.jetstream();
  const users = await js.views.kv('skiff_users');
  await users.put('someone', new TextEncoder().encode('{"secret":true}'));
  const apps = await js.views.kv(APPS_BUCKET);
  await apps.put('app1', new TextEncoder().encode('{"name":"app1"}'));
  const droplets = await js.views.os(ObjectStores.droplets);
  await droplets.putBlob({ name: 'd1' }, new TextEncoder().encode('droplet'));

  const { bus: health } = await connectAs(t, nats, 'health');
  const appsForHealth = await health.nats.jetstream().views.kv(APPS_BUCKET);
  t.equal(new TextDecoder().decode((await appsForHealth.get('app1'))!.value), '{"name":"app1"}', 'the health manager reads desired state');
  await t.rejects(appsForHealth.put('app1', new TextEncoder().encode('{}')), /permission/i, 'but cannot change it');

  const { bus: dea } = await connectAs(t, nats, 'dea');
  const dropletsForDea = await dea.nats.jetstream().views.os(ObjectStores.droplets);
  t.equal(new TextDecoder().decode((await dropletsForDea.getBlob('d1'))!), 'droplet', 'a DEA downloads droplets');
  await t.rejects(dropletsForDea.putBlob({ name: 'd2' }, new TextEncoder().encode('evil')), /permission/i, 'but cannot plant one');
  await t.rejects(dea.nats.jetstream().views.kv('skiff_users').then((kv) => kv.get('someone')), /permission/i, 'nor read users');

  const { bus: router } = await connectAs(t, nats, 'router');
  await t.rejects(router.nats.jetstream().views.kv('skiff_controller').then((kv) => kv.get('token_secret')), /permission/i, 'a router cannot read the token secret');
});

t.test('anonymous clients and wrong passwords are refused with one clear error', async (t) => {
  const nats = await startSecuredNats(t);
  await t.rejects(connectBus({ servers: nats.server.url, name: 'anonymous', logger: silentLogger }), {
    message: `NATS at ${nats.server.url} refused an anonymous connection (authorization violation)`,
  });
  const wrong = await connectBus({
    servers: nats.server.url, name: 'wrong', logger: silentLogger, auth: { user: 'dea', pass: 'not-it', origin: '--nats-credentials /x.json' },
  }).catch((error: Error) => error);
  t.equal((wrong as Error).message, `NATS at ${nats.server.url} refused user dea from --nats-credentials /x.json (authorization violation)`);
  t.notMatch((wrong as Error).message, /not-it/);
});

t.test('a role refused by NATS says so in one line and exits non-zero; credentials on its command line are refused', async (t) => {
  const nats = await startSecuredNats(t);
  const home = tempHome(t);
  const wrong = nats.credentialsFile('health', 'not-the-password');
  const refused = await skiff(['health', '--nats', nats.server.url], home, { SKIFF_NATS_CREDENTIALS: wrong });
  t.equal(refused.code, 1);
  t.equal(refused.stderr.trim().split('\n').at(-1), `skiff health: NATS at ${nats.server.url} refused user health from SKIFF_NATS_CREDENTIALS (${wrong}) (authorization violation)`);
  t.notMatch(refused.stderr, /not-the-password/);

  const inline = await skiff(['router', '--nats', `nats://router:${nats.password.router}@127.0.0.1:${nats.server.port}`], home);
  t.equal(inline.code, 2);
  t.equal(inline.stderr.split('\n').length, 2, 'one line');
  t.match(inline.stderr, /^skiff router: --nats must not carry a user, password or token/);
  t.notMatch(inline.stderr, new RegExp(nats.password.router));
});

t.test('the README\'s table of roles and subjects is the table the server is given', async (t) => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  t.ok(readme.includes(permissionTable()), 'README.md holds permissionTable() verbatim; paste its output when the table changes');
});
