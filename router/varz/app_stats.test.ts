import t from 'tap';
import { APP_LATENCY_BUCKETS } from '../../bus/messages';
import { validateRouterAppStats } from '../../bus/validate';
import { AppStats, appStatsMessage, MAX_COUNTED_APPS, OTHER_APP } from './app_stats';

const router = { id: 'r-1', host: '10.0.0.1:8081', startedMs: 1_000 };

t.test('responses by exact code and latency by bucket, upper bounds inclusive', async (t) => {
  const stats = new AppStats();
  const shop = stats.record('shop')!;
  shop.response(200, 0.001);
  shop.response(200, 0.005); // on the bound: that bucket (le="0.005")
  shop.response(404, 0.0051);
  shop.response(502, 30); // beyond 10 s: +Inf
  t.equal(stats.record('shop'), shop, 'one record per app');
  t.equal(stats.record(''), null, 'no record without an app id');
  const message = appStatsMessage(stats, router, 5_000);
  t.same(message.apps.shop!.codes, { '200': 2, '404': 1, '502': 1 });
  t.same(message.apps.shop!.latency.counts, [2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  t.equal(message.apps.shop!.latency.count, 4);
  t.ok(Math.abs(message.apps.shop!.latency.sum - 30.0111) < 1e-9);
  t.same(message.buckets, APP_LATENCY_BUCKETS);
  t.equal(message.started, 1_000);
  t.same(validateRouterAppStats(JSON.parse(JSON.stringify(message))), { ok: true, value: message }, 'the message passes the bus validator');
});

t.test('threads add up: snapshot of one, add into another', async (t) => {
  const a = new AppStats();
  const b = new AppStats();
  a.record('shop')!.response(200, 0.02);
  b.record('shop')!.response(200, 0.02);
  b.record('shop')!.response(500, 0.2);
  b.record('blog')!.response(301, 0.001);
  const sum = new AppStats();
  sum.add(a.snapshot());
  sum.add(structuredClone(b.snapshot())); // as posted between threads
  const message = appStatsMessage(sum, router, 5_000);
  t.same(message.apps.shop!.codes, { '200': 2, '500': 1 });
  t.same(message.apps.shop!.latency.counts, [0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  t.same(message.apps.blog!.codes, { '301': 1 });
});

t.test(`at most ${MAX_COUNTED_APPS} apps, the rest summed under ${OTHER_APP}`, async (t) => {
  const stats = new AppStats();
  for (let i = 0; i < MAX_COUNTED_APPS + 5; i++) stats.record(`app-${i}`)!.response(200, 0.01);
  const message = appStatsMessage(stats, router, 5_000);
  t.equal(Object.keys(message.apps).length, MAX_COUNTED_APPS + 1);
  t.same(message.apps[OTHER_APP]!.codes, { '200': 5 });
  t.same(message.apps['app-0']!.codes, { '200': 1 }, 'apps seen first keep their own record');
  const sum = new AppStats();
  sum.add(stats.snapshot());
  sum.add(stats.snapshot());
  t.same(appStatsMessage(sum, router, 5_000).apps[OTHER_APP]!.codes, { '200': 10 }, '_other adds up across threads too');
});

t.test('WebSocket-only apps are not reported (no responses to count)', async (t) => {
  const stats = new AppStats();
  stats.record('chat')!.requests++;
  t.same(appStatsMessage(stats, router, 5_000).apps, {});
});
