// The router at the edge: slow clients, idle connection floods, and route
// message floods. Bounded in count and time; loopback only.
import * as net from 'node:net';
import t from 'tap';
import { sleep, startNats } from './harness';
import { busClient, get, registerRoute, startBackend, startRouter } from './router_harness';

t.test('edge behaviour', async (t) => {
  const nats = await startNats(t);
  const router = await startRouter(t, nats);
  const nc = await busClient(t, nats);
  const backend = await startBackend(t, (_req, res) => res.end('ok'));
  await registerRoute(nc, router, { port: backend.port, uris: ['edge.localhost'] });

  t.test('a client trickling its headers is closed after about 10 s, and the app sees nothing', async (t) => {
    const before = backend.requests.length;
    const head = 'GET / HTTP/1.1\r\nHost: edge.localhost\r\nX-Slow: ' + 'a'.repeat(40);
    const socket = net.connect(router.port, '127.0.0.1');
    t.teardown(() => socket.destroy());
    const started = Date.now();
    let sent = 0;
    const timer = setInterval(() => sent < head.length && socket.write(head[sent++]), 1000);
    const closedAfter = await new Promise<number>((resolve) => {
      socket.once('close', () => resolve(Date.now() - started));
      setTimeout(() => resolve(-1), 25_000).unref();
    });
    clearInterval(timer);
    t.ok(closedAfter >= 8_000 && closedAfter <= 16_000, `closed after ${closedAfter} ms though a byte came every second`);
    t.equal(backend.requests.length, before, 'nothing reached the app');
  });

  t.test('thousands of idle connections do not starve active ones', async (t) => {
    const idle: net.Socket[] = [];
    t.teardown(() => idle.forEach((s) => s.destroy()));
    await Promise.all(
      Array.from({ length: 3000 }, () =>
        new Promise<void>((resolve) => {
          const s = net.connect(router.port, '127.0.0.1', () => resolve());
          s.on('error', () => resolve());
          idle.push(s);
        }),
      ),
    );
    const open = idle.filter((s) => !s.destroyed).length;
    t.ok(open >= 2900, `${open} idle connections open`);
    let worst = 0;
    for (let i = 0; i < 50; i++) {
      const started = Date.now();
      const reply = await get({ port: router.port, host: 'edge.localhost' });
      worst = Math.max(worst, Date.now() - started);
      if (reply.status !== 200) t.fail(`request ${i} got ${reply.status}`);
    }
    t.ok(worst < 1000, `50 requests all answered alongside them (slowest ${worst} ms)`);
  });

  t.test('a flood of register messages neither stalls requests nor loses unregisters', async (t) => {
    const varzBefore = await router.varz();
    const hosts = 20_000;
    const perSecond = 100_000;
    const seconds = 3;
    const encoder = new TextEncoder();
    const message = (i: number) => encoder.encode(JSON.stringify({ host: '127.0.0.1', port: 40000 + (i % 1000), uris: [`flood-${i % hosts}.localhost`] }));

    // Requests keep flowing while the flood is applied.
    let flooding = true;
    let served = 0;
    let failed = 0;
    let worst = 0;
    const traffic = (async () => {
      while (flooding) {
        const started = Date.now();
        const reply = await get({ port: router.port, host: 'edge.localhost' }).catch(() => ({ status: 0 }));
        worst = Math.max(worst, Date.now() - started);
        if (reply.status === 200) served++;
        else failed++;
      }
    })();

    let published = 0;
    for (let s = 0; s < seconds; s++) {
      const secondStarted = Date.now();
      for (let k = 0; k < perSecond; k++) {
        nc.publish('router.register', message(published++));
        if (k % 5000 === 4999) await new Promise((r) => setImmediate(r));
      }
      await nc.flush();
      const left = 1000 - (Date.now() - secondStarted);
      if (left > 0) await sleep(left);
    }
    // Then unregister the first 1,000 hosts, interleaved with more registers of others.
    for (let i = 0; i < 1000; i++) {
      nc.publish('router.unregister', encoder.encode(JSON.stringify({ host: '127.0.0.1', port: 40000 + (i % 1000), uris: [`flood-${i}.localhost`] })));
      nc.publish('router.register', message(1000 + (i % (hosts - 1000))));
      published++;
    }
    await nc.flush();

    const expected = varzBefore.registry_messages.register + published;
    const deadline = Date.now() + 30_000;
    let varz = await router.varz();
    while (varz.registry_messages.register < expected && Date.now() < deadline) {
      await sleep(200);
      varz = await router.varz();
    }
    flooding = false;
    await traffic;
    t.equal(varz.registry_messages.register, expected, `all ${published} register messages applied`);
    t.equal(varz.registry_messages.unregister, varzBefore.registry_messages.unregister + 1000, 'all 1,000 unregisters applied');
    t.equal(varz.slow_consumer_events, 0, 'no slow-consumer event');
    const routes = await router.routes();
    const leftOver = Array.from({ length: 1000 }, (_, i) => `flood-${i}.localhost`).filter((uri) => (routes[uri] ?? []).length > 0);
    t.same(leftOver, [], 'every unregistered host is gone');
    t.ok(Object.keys(routes).length >= hosts, `${Object.keys(routes).length} routes in the table`);
    t.ok(served > 0, `${served} requests served during the flood`);
    t.equal(failed, 0, 'none failed');
    t.ok(worst < 2000, `no request stalled (slowest ${worst} ms)`);
  });
});
