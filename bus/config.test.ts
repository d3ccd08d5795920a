import t from 'tap';
import { mkdirSync, rmSync } from 'node:fs';
import { captureLog, eventually, startNats, type TeardownHost } from '../test/harness';
import { deleteSetting, openComponentConfig, openConfigBucket, parseSettingKey, putSetting, resolveSetting, CONFIG_BUCKET } from './config';
import { connectBus, type Bus } from './connection';

async function openBus(t: TeardownHost, url: string): Promise<Bus> {
  const { logger } = captureLog('bus', 'warn');
  const bus = await connectBus({ servers: url, name: 'config-test', logger });
  t.teardown(() => bus.close());
  return bus;
}

t.test('the config store, against a JetStream nats-server', async (t) => {
  const nats = await startNats(t);
  const bus = await openBus(t, nats.url);

  t.test('settings present before open are read, other components are not', async (t) => {
    await putSetting(bus, 'router.lb_algorithm', 'least-connection');
    await putSetting(bus, 'router.limits.max_conns', 500);
    await putSetting(bus, 'routerx.ignored', true);
    await putSetting(bus, 'dea.max_memory_mb', 4096);
    const { logger } = captureLog('router');
    const config = await openComponentConfig(bus, 'router', logger);
    t.teardown(() => config.close());
    t.equal(config.get('lb_algorithm'), 'least-connection', 'readable as soon as open resolves');
    t.equal(config.get('limits.max_conns'), 500);
    t.equal(config.get('max_memory_mb'), undefined, "another component's key is not seen");
    t.same(config.all(), { lb_algorithm: 'least-connection', 'limits.max_conns': 500 });
  });

  t.test('changes after open reach onChange; delete gives undefined', async (t) => {
    const { logger } = captureLog('health');
    const config = await openComponentConfig(bus, 'health', logger);
    t.teardown(() => config.close());
    t.same(config.all(), {}, 'empty component opens fine');
    const changes: Array<[string, unknown]> = [];
    config.onChange((setting, value) => changes.push([setting, value]));

    await putSetting(bus, 'health.droplet_lost', 45);
    await putSetting(bus, 'health.flapping', { timeout: 500, death: 1 });
    await putSetting(bus, 'router.other', 'not mine');
    await eventually(() => changes.length >= 2, 'two changes');
    t.equal(config.get('droplet_lost'), 45);
    t.same(config.get('flapping'), { timeout: 500, death: 1 });

    await putSetting(bus, 'health.droplet_lost', 45);
    await deleteSetting(bus, 'health.droplet_lost');
    await eventually(() => changes.length >= 3, 'delete seen');
    t.same(changes, [
      ['droplet_lost', 45],
      ['flapping', { timeout: 500, death: 1 }],
      ['droplet_lost', undefined],
    ], 'rewriting an unchanged value is not a change; the other component is not seen');
    t.equal(config.get('droplet_lost'), undefined);
    t.notOk('droplet_lost' in config.all());

    const kv = await openConfigBucket(bus);
    await putSetting(bus, 'health.purged', 1);
    await kv.purge('health.purged');
    await eventually(() => changes.some(([s, v]) => s === 'purged' && v === undefined), 'purge seen as undefined');
  });

  t.test('a value that is not JSON is logged by key only and ignored', async (t) => {
    const kv = await openConfigBucket(bus);
    await kv.put('stager.broken', 'password=hunter2 {');
    await putSetting(bus, 'stager.fine', 'yes');
    const { logger, lines } = captureLog('stager');
    const config = await openComponentConfig(bus, 'stager', logger);
    t.teardown(() => config.close());
    t.equal(config.get('broken'), undefined);
    t.equal(config.get('fine'), 'yes');

    const changes: string[] = [];
    config.onChange((setting) => changes.push(setting));
    await putSetting(bus, 'stager.fine', 'still');
    await kv.put('stager.fine', 'not json either');
    await putSetting(bus, 'stager.after', 1);
    await eventually(() => changes.includes('after'), 'later change');
    t.same(changes, ['fine', 'after'], 'bad update produced no change');
    t.equal(config.get('fine'), 'still', 'previous value kept');
    const warnings = lines.filter((l) => l.includes('config value is not JSON'));
    t.equal(warnings.length, 2);
    t.match(warnings[0], /WARN stager: config value is not JSON, ignored key=stager.broken$/);
    t.notOk(lines.some((l) => l.includes('hunter2')), 'the value is not logged');
  });

  t.test('a throwing listener is logged and others still run', async (t) => {
    const { logger, lines } = captureLog('dea');
    const config = await openComponentConfig(bus, 'dea', logger);
    t.teardown(() => config.close());
    const seen: unknown[] = [];
    config.onChange(() => {
      throw new Error('listener broke');
    });
    config.onChange((_, value) => seen.push(value));
    await putSetting(bus, 'dea.max_memory_mb', 2048);
    await eventually(() => seen.length === 1, 'second listener ran');
    t.ok(lines.some((l) => l.includes('config change listener failed') && l.includes('key=dea.max_memory_mb')));
  });

  t.test('bad names are refused', async (t) => {
    await t.rejects(putSetting(bus, 'nodot', 1), /expected <component>.<setting>/);
    await t.rejects(putSetting(bus, 'router.', 1), /invalid setting key/);
    await t.rejects(putSetting(bus, 'router.x', undefined), /use deleteSetting/);
    await t.rejects(openComponentConfig(bus, 'a.b', captureLog().logger), /invalid component name/);
    t.same(parseSettingKey('router.lb_algorithm'), { component: 'router', setting: 'lb_algorithm' });
  });

  t.test('the bucket is the shared skiff_config', async (t) => {
    const status = await (await openConfigBucket(bus)).status();
    t.equal(status.bucket, CONFIG_BUCKET);
  });
});

t.test('the watch catches up at once after NATS restarts', async (t) => {
  const nats = await startNats(t);
  const { logger: busLogger } = captureLog('bus', 'warn');
  const bus = await connectBus({ servers: nats.url, name: 'config-restart', logger: busLogger });
  t.teardown(() => bus.close());
  await putSetting(bus, 'router.kept', 'yes');
  await putSetting(bus, 'router.lost', 'soon');
  const config = await openComponentConfig(bus, 'router', captureLog('router').logger);
  t.teardown(() => config.close());
  const changes: Array<[string, unknown]> = [];
  config.onChange((setting, value) => changes.push([setting, value]));

  let reconnects = 0;
  bus.onEvent((event) => event === 'reconnect' && reconnects++);
  await nats.stop();
  await nats.restart();
  await eventually(() => reconnects === 1, 'reconnected', 10_000);
  const started = Date.now();
  await putSetting(bus, 'router.kept', 'changed');
  // Without the resync on reconnect this takes ~15 s (missed consumer heartbeats).
  await eventually(() => config.get('kept') === 'changed', 'change after restart', 5000);
  t.ok(Date.now() - started < 5000, 'seen within seconds');

  // A server that comes back without its store: the settings are gone, and the
  // component is told so.
  await nats.stop();
  rmSync(nats.storeDir!, { recursive: true, force: true });
  mkdirSync(nats.storeDir!);
  await nats.restart();
  await eventually(() => reconnects === 2, 'reconnected again', 10_000);
  await eventually(() => changes.some(([s, v]) => s === 'lost' && v === undefined), 'lost setting reported as deleted', 5000);
  t.same(config.all(), {});
  await putSetting(bus, 'router.fresh', 1);
  await eventually(() => config.get('fresh') === 1, 'the recreated bucket is watched');
});

t.test('without JetStream, opening fails fast with a clear message', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const bus = await openBus(t, nats.url);
  const started = Date.now();
  await t.rejects(
    openComponentConfig(bus, 'router', captureLog().logger, { timeoutMs: 3000 }),
    /config store unavailable \(JetStream KV bucket skiff_config\): JetStream is not enabled on the server; is nats-server running with JetStream enabled/,
  );
  t.ok(Date.now() - started < 3000, 'does not wait for the timeout');
});

t.test('with NATS unreachable, opening gives up after the timeout', async (t) => {
  const nats = await startNats(t);
  const bus = await openBus(t, nats.url);
  await nats.stop();
  await eventually(() => !bus.isConnected(), 'bus noticed');
  const started = Date.now();
  await t.rejects(openComponentConfig(bus, 'router', captureLog().logger, { timeoutMs: 500 }), /config store unavailable/);
  t.ok(Date.now() - started < 2000, 'bounded by the timeout');
});

t.test('resolveSetting: flag, then env, then store, then default', async (t) => {
  t.same(resolveSetting({ flag: 1, env: 2, store: 3, fallback: 4 }), { value: 1, source: 'flag' });
  t.same(resolveSetting({ env: 2, store: 3, fallback: 4 }), { value: 2, source: 'env' });
  t.same(resolveSetting({ store: 3, fallback: 4 }), { value: 3, source: 'store' });
  t.same(resolveSetting({ fallback: 4 }), { value: 4, source: 'default' });
  t.same(resolveSetting({ flag: undefined, env: 0, fallback: 4 }), { value: 0, source: 'env' }, 'falsy values count');
  t.same(resolveSetting<string | null>({ store: null, fallback: 'x' }), { value: null, source: 'store' }, 'a stored null is a value');
});
