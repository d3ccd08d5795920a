import t from 'tap';
import { captureLog, eventually, sleep, startNats, type TeardownHost } from '../test/harness';
import { BusRequestError, connectBus, parseServers, redactUrl, requestAll, type Bus, type BusEvent, type BusMessage } from './connection';

const json = (msg: BusMessage): unknown => JSON.parse(new TextDecoder().decode(msg.data));

async function openBus(t: TeardownHost, url: string, name = 'test'): Promise<{ bus: Bus; lines: string[]; events: Array<[BusEvent, string | undefined]> }> {
  const { logger, lines } = captureLog(name);
  const bus = await connectBus({ servers: url, name, logger });
  const events: Array<[BusEvent, string | undefined]> = [];
  bus.onEvent((event, detail) => events.push([event, detail]));
  t.teardown(() => bus.close());
  return { bus, lines, events };
}

t.test('publish, subscribe and request round trips', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const { bus } = await openBus(t, nats.url);

  const received: unknown[] = [];
  const sub = bus.subscribe('greeting.>', (msg) => received.push([msg.subject, json(msg)]));
  t.equal(sub.subject, 'greeting.>');
  bus.publish('greeting.object', { hello: 'world' });
  bus.publish('greeting.bytes', new TextEncoder().encode('[1,2]'));
  await bus.flush();
  await eventually(() => received.length === 2, 'two messages');
  t.same(received, [['greeting.object', { hello: 'world' }], ['greeting.bytes', [1, 2]]]);

  sub.unsubscribe();
  sub.unsubscribe();
  bus.publish('greeting.late', {});
  await bus.flush();
  await sleep(50);
  t.equal(received.length, 2, 'nothing after unsubscribe');

  bus.subscribe('echo', (msg) => {
    t.ok(msg.reply, 'request carries a reply subject');
    msg.respond({ echoed: json(msg) });
  });
  t.same(await bus.request('echo', { n: 1 }, 2000), { echoed: { n: 1 } });

  bus.subscribe('no.reply', (msg) => t.equal(msg.respond({}), false, 'respond without reply subject is false'));
  bus.publish('no.reply', {});
  await bus.flush();
});

t.test('request failures are BusRequestErrors with a reason', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const { bus } = await openBus(t, nats.url);

  const noResponders = await bus.request('nobody.home', {}, 1000).catch((err: unknown) => err);
  t.type(noResponders, BusRequestError);
  t.match(noResponders, { reason: 'no-responders', message: 'no responders for nobody.home' });

  bus.subscribe('silent', () => {});
  const timeout = await bus.request('silent', {}, 100).catch((err: unknown) => err);
  t.match(timeout, { reason: 'timeout', message: 'request to silent timed out after 100 ms' });

  bus.subscribe('garbled', (msg) => msg.respond(new TextEncoder().encode('not json')));
  const garbled = await bus.request('garbled', {}, 1000).catch((err: unknown) => err);
  t.match(garbled, { reason: 'bad-reply', message: 'reply to garbled is not JSON' });
});

t.test('requestAll gathers every reply within the window', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const { bus } = await openBus(t, nats.url);
  t.same(await requestAll(bus, 'find.nobody', {}, { windowMs: 200 }), [], 'no responders gives []');

  bus.subscribe('find.all', (msg) => msg.respond({ from: 'a' }));
  bus.subscribe('find.all', (msg) => msg.respond({ from: 'b' }));
  const all = await requestAll<{ from: string }>(bus, 'find.all', {}, { windowMs: 300 });
  t.same(all.map((r) => r.from).sort(), ['a', 'b']);
  const first = await requestAll(bus, 'find.all', {}, { windowMs: 5000, max: 1 });
  t.equal(first.length, 1, 'max ends the wait early');
});

t.test('a throwing handler is logged and the bus keeps working', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const { bus, lines } = await openBus(t, nats.url);
  const seen: number[] = [];
  bus.subscribe('fragile', (msg) => {
    const { n } = json(msg) as { n: number };
    if (n === 1) throw new Error('handler blew up');
    seen.push(n);
  });
  bus.subscribe('fragile.async', async () => {
    throw new Error('async handler blew up');
  });
  bus.publish('fragile', { n: 1, secret: 'hunter2' });
  bus.publish('fragile.async', { secret: 'hunter2' });
  bus.publish('fragile', { n: 2 });
  await bus.flush();
  await eventually(() => seen.includes(2), 'message after the failing one');
  await eventually(() => lines.some((l) => l.includes('async handler blew up')), 'async failure logged');
  t.ok(lines.some((l) => / ERROR test: message handler failed subject=fragile error="handler blew up"/.test(l)), 'sync failure logged');
  t.notOk(lines.some((l) => l.includes('hunter2')), 'message bodies are not logged');
  t.ok(bus.isConnected());
  t.same(await (async () => {
    bus.subscribe('still.alive', (msg) => msg.respond({ ok: true }));
    return bus.request('still.alive', {}, 1000);
  })(), { ok: true });
});

t.test('disconnect and reconnect when NATS goes away and comes back', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const { bus, events, lines } = await openBus(t, nats.url);
  const received: unknown[] = [];
  bus.subscribe('survives', (msg) => received.push(json(msg)));

  await nats.stop();
  await eventually(() => events.some(([e]) => e === 'disconnect'), 'disconnect event');
  t.notOk(bus.isConnected(), 'not connected while NATS is down');
  await eventually(() => events.some(([e]) => e === 'reconnecting'), 'reconnecting event');

  await nats.restart();
  await eventually(() => events.some(([e]) => e === 'reconnect'), 'reconnect event', 10_000);
  t.ok(bus.isConnected(), 'connected again');
  t.match(events.find(([e]) => e === 'disconnect'), ['disconnect', `127.0.0.1:${nats.port}`]);
  t.ok(lines.some((l) => l.includes('WARN test: disconnected from NATS')));
  t.ok(lines.some((l) => l.includes('INFO test: reconnected to NATS')));

  // A second connection publishes, so delivery cannot be a local shortcut.
  const { bus: other } = await openBus(t, nats.url, 'other');
  other.publish('survives', { after: 'reconnect' });
  await other.flush();
  await eventually(() => received.length === 1, 'message through the old subscription');
  t.same(received, [{ after: 'reconnect' }]);
});

t.test('waitForServer: a role started before nats-server still comes up', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  await nats.stop();
  const { logger } = captureLog();
  await t.rejects(
    connectBus({ servers: nats.url, name: 'impatient', logger }),
    { message: `cannot connect to NATS at nats://127.0.0.1:${nats.port}: connection refused` },
  );
  const connecting = connectBus({ servers: nats.url, name: 'patient', logger, waitForServer: true });
  await sleep(300);
  await nats.restart();
  const bus = await connecting;
  t.teardown(() => bus.close());
  t.ok(bus.isConnected());
});

t.test('credentials in the URL are used and never logged', async (t) => {
  const nats = await startNats(t, { jetstream: false, args: ['--user', 'skiff', '--pass', 's3cret'] });
  const { bus, lines } = await openBus(t, `nats://skiff:s3cret@127.0.0.1:${nats.port}`);
  bus.subscribe('authed', (msg) => msg.respond({ ok: true }));
  t.same(await bus.request('authed', {}, 1000), { ok: true });

  const { logger, lines: failedLines } = captureLog();
  const refused = await connectBus({ servers: `nats://skiff:wrong@127.0.0.1:${nats.port}`, name: 'x', logger }).catch((e: Error) => e);
  t.type(refused, Error);
  t.notMatch((refused as Error).message, /wrong|s3cret/, 'error does not echo the password');
  t.notOk([...lines, ...failedLines].some((l) => /s3cret|wrong/.test(l)), 'logs do not contain the password');
});

t.test('async handlers beyond the pending limit: dropped and reported as slow-consumer', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const { bus, events, lines } = await openBus(t, nats.url);
  const release: Array<() => void> = [];
  const handled: number[] = [];
  bus.subscribe('slow', (msg) => {
    handled.push((json(msg) as { n: number }).n);
    return new Promise<void>((resolve) => release.push(resolve));
  }, { maxPendingMessages: 2 });
  for (let n = 1; n <= 5; n++) bus.publish('slow', { n });
  await bus.flush();
  await eventually(() => events.some(([e]) => e === 'slow-consumer'), 'slow-consumer event');
  await sleep(50);
  t.same(handled, [1, 2], 'messages beyond the limit are not handed to the handler');
  t.equal(events.filter(([e]) => e === 'slow-consumer').length, 1, 'reported once per episode');
  t.match(events.find(([e]) => e === 'slow-consumer')?.[1], /^slow: 2 messages/);

  release.splice(0).forEach((done) => done());
  await eventually(() => lines.some((l) => l.includes('subscription caught up') && l.includes('dropped=3')), 'caught-up log with drop count');
  bus.publish('slow', { n: 6 });
  await bus.flush();
  await eventually(() => handled.includes(6), 'delivery resumes');
  release.splice(0).forEach((done) => done());
});

t.test('close is idempotent, emits closed, and publish afterwards throws', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const { bus, events } = await openBus(t, nats.url);
  await Promise.all([bus.close(), bus.close()]);
  await bus.close();
  await eventually(() => events.some(([e]) => e === 'closed'), 'closed event');
  t.notOk(bus.isConnected());
  t.throws(() => bus.publish('x', {}));
});

t.test('redactUrl hides credentials', async (t) => {
  t.equal(redactUrl('nats://user:pass@host:4222'), 'nats://***@host:4222');
  t.equal(redactUrl('nats://token@host:4222'), 'nats://***@host:4222');
  t.equal(redactUrl('user:pass@host:4222'), '***@host:4222');
  t.equal(redactUrl('nats://a:b@h1:4222,nats://h2:4222'), 'nats://***@h1:4222,nats://h2:4222');
  t.equal(redactUrl('nats://host:4222'), 'nats://host:4222');
  t.equal(redactUrl('nats://user:p@ss@host:4222/x@y'), 'nats://***@host:4222/x@y', 'an unescaped @ in the password is hidden too');
});

t.test('parseServers takes credentials out of URLs for nats.js', async (t) => {
  t.same(parseServers('nats://u:p%40ss@h:4222'), { servers: ['nats://h:4222'], user: 'u', pass: 'p@ss' });
  t.same(parseServers('nats://tok@h:4222'), { servers: ['nats://h:4222'], token: 'tok' });
  t.same(parseServers('h1:4222, nats://h2:4223'), { servers: ['nats://h1:4222', 'nats://h2:4223'] });
  t.same(parseServers(['nats://a:4222', 'nats://b:4222']).servers, ['nats://a:4222', 'nats://b:4222']);
  t.throws(() => parseServers(''), /no NATS server URL/);
  const invalid = (() => {
    try {
      parseServers('nats://u:secret@[bad');
      return undefined;
    } catch (err) {
      return err as Error;
    }
  })();
  t.match(invalid?.message, /^invalid NATS server URL: nats:\/\/\*\*\*@\[bad$/, 'invalid URL reported without the password');
});
