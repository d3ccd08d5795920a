// router.app_stats from a real router with two threads: every 2 s, per app,
// responses by exact code and the latency histogram, summed over threads,
// and the counters start over (new `started`) when the router restarts.
import t from 'tap';
import { validateRouterAppStats } from '../bus/validate';
import type { RouterAppStats } from '../bus/messages';
import { eventually, startNats } from './harness';
import { busClient, get, registerRoute, startBackend, startRouter } from './router_harness';

t.test('per-app codes and latency, summed over threads, published every 2 s', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const nc = await busClient(t, nats);
  const heard: RouterAppStats[] = [];
  const invalid: string[] = [];
  nc.subscribe('router.app_stats', {
    callback: (_err, msg) => {
      const checked = validateRouterAppStats(JSON.parse(new TextDecoder().decode(msg.data)));
      if (checked.ok) heard.push(checked.value);
      else invalid.push(checked.error);
    },
  });
  const shop = await startBackend(t, (req, res) => {
    if (req.url === '/missing') res.writeHead(404).end('no');
    else if (req.url === '/slow') setTimeout(() => res.end('slow'), 300);
    else res.end('ok');
  });
  const router = await startRouter(t, nats, { args: ['--threads', '2'] });
  await registerRoute(nc, router, { port: shop.port, uris: ['shop.localhost'], app: 'app-shop' });
  await eventually(async () => (await Promise.all([1, 2, 3, 4].map(() => get({ port: router.port, host: 'shop.localhost' })))).every((r) => r.status === 200), 'both threads know the route', 10_000);

  const before = heard.length;
  await eventually(() => heard.length > before, 'a router.app_stats message', 10_000);
  const base = heard[heard.length - 1]!.apps['app-shop']?.latency.count ?? 0;

  // Fresh connections: the kernel spreads them over both threads.
  for (let i = 0; i < 40; i++) t.equal((await get({ port: router.port, host: 'shop.localhost' })).status, 200);
  for (let i = 0; i < 3; i++) t.equal((await get({ port: router.port, host: 'shop.localhost', path: '/missing' })).status, 404);
  t.equal((await get({ port: router.port, host: 'shop.localhost', path: '/slow' })).status, 200);
  t.equal((await get({ port: router.port, host: 'nowhere.localhost' })).status, 404, 'an unknown route belongs to no app');

  await eventually(() => (heard[heard.length - 1]!.apps['app-shop']?.latency.count ?? 0) >= base + 44, 'every request counted, over both threads', 15_000);
  const last = heard[heard.length - 1]!;
  const app = last.apps['app-shop']!;
  t.equal(app.latency.count, base + 44);
  t.equal(app.codes['404'], 3, 'codes by exact status');
  t.equal(app.codes['200'], app.latency.count - 3);
  t.ok(app.latency.counts.slice(6).reduce((a, b) => a + b, 0) >= 1, 'the slow request lies above 250 ms');
  t.ok(app.latency.sum >= 0.3);
  t.same(Object.keys(last.apps), ['app-shop']);
  t.same(invalid, []);
  const varz = await router.varz();
  t.ok(varz.requests_per_thread.every((n: number) => n > 0), `both threads served requests (${varz.requests_per_thread})`);
  t.match(last.host, new RegExp(`:${router.statusPort}$`), 'host is the status address');
  const gaps = heard.slice(-4).map((m, i, all) => (i === 0 ? 2000 : m.ts - all[i - 1]!.ts));
  // The period, not a speed: bounds wide enough for a loaded machine, tight enough to catch 1 s or 10 s.
  t.ok(gaps.every((g) => g >= 1500 && g <= 8000), `about every 2 s (${gaps})`);

  // A restarted router starts over with a new `started`.
  await router.stop();
  const again = await startRouter(t, nats);
  await registerRoute(nc, again, { port: shop.port, uris: ['shop.localhost'], app: 'app-shop' });
  t.equal((await get({ port: again.port, host: 'shop.localhost' })).status, 200);
  await eventually(() => heard[heard.length - 1]!.started > last.started && heard[heard.length - 1]!.apps['app-shop']?.latency.count === 1, 'the new router counts from zero', 10_000);
});
