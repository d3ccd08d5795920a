import t from 'tap';
import { captureLog, eventually, startNats } from '../test/harness';
import {
  appCpu, appInstances, appSeries, appWindow, AppStatsCollector, histogramQuantile, routerDelta, runningInstances, sumApps,
} from './app-stats';
import { connectBus } from './connection';
import { silentLogger } from './log';
import { APP_LATENCY_BUCKETS, type DeaStats, type RouterAppStats } from './messages';
import { Subjects } from './subjects';

const B = APP_LATENCY_BUCKETS.length + 1;

/** A router message with `n` requests of app `app`, all in bucket `bucket` and all 200. */
function routerMsg(router: string, ts: number, apps: Record<string, { n: number; bucket?: number; code?: string }>, started = 0): RouterAppStats {
  const out: RouterAppStats['apps'] = {};
  for (const [app, { n, bucket = 2, code = '200' }] of Object.entries(apps)) {
    const counts = new Array<number>(B).fill(0);
    counts[bucket] = n;
    out[app] = { codes: { [code]: n }, latency: { counts, sum: n * 0.02, count: n } };
  }
  return { router, host: '127.0.0.1:8081', started, ts, buckets: [...APP_LATENCY_BUCKETS], apps: out };
}

t.test('sum over routers per app', async (t) => {
  const totals = sumApps([routerMsg('a', 10_000, { shop: { n: 5 } }), routerMsg('b', 10_000, { shop: { n: 7, code: '502' }, blog: { n: 1 } })]);
  t.same(totals.get('shop')!.codes, { '200': 5, '502': 7 });
  t.equal(totals.get('shop')!.count, 12);
  t.equal(totals.get('blog')!.count, 1);
  const odd = routerMsg('c', 10_000, { shop: { n: 3 } });
  odd.buckets = [1, 2];
  odd.apps.shop!.latency.counts = [0, 3, 0];
  t.equal(sumApps([odd]).get('shop')!.count, 0, 'a router with other buckets adds its codes only');
  t.same(sumApps([odd]).get('shop')!.codes, { '200': 3 });
});

t.test('rates from differences of one router\'s messages, summed over routers', async (t) => {
  const a = [routerMsg('a', 100_000, { shop: { n: 100 } }), routerMsg('a', 102_000, { shop: { n: 120 } }), routerMsg('a', 110_000, { shop: { n: 200 } })];
  const b = [routerMsg('b', 101_000, { shop: { n: 10 } }), routerMsg('b', 111_000, { shop: { n: 60 } })];
  const w = appWindow([a, b], 'shop', 10_000);
  t.equal(w.count, 100 + 50);
  t.equal(w.rate, 100 / 10 + 50 / 10, '10 req/s through a plus 5 through b');
  t.equal(appWindow([a], 'shop', 8_000).rate, 80 / 8, 'the window starts at the last sample at or before it');
  t.equal(appWindow([a], 'nothing', 10_000).rate, 0);
  t.equal(appWindow([[a[2]!]], 'shop', 10_000).rate, 0, 'one message of a router that started long ago: no rate yet');
  const young = [routerMsg('y', 4_000, { shop: { n: 8 } }, 0)];
  t.equal(appWindow([young], 'shop', 10_000).rate, 2, 'a router that started inside the window counts from zero at its start');
  t.equal(routerDelta(a, 110_000, 110_000), undefined, 'no time between the samples: nothing');
});

t.test('p99 and p50 from the summed histogram, interpolated within the bucket', async (t) => {
  const counts = new Array<number>(B).fill(0);
  counts[0] = 98; // <= 5 ms
  counts[5] = 2; // 100-250 ms
  t.ok(Math.abs(histogramQuantile(0.99, counts) - 0.175) < 1e-9, 'rank 99 of 100: halfway into 0.1-0.25');
  t.ok(Math.abs(histogramQuantile(0.5, counts) - 0.005 * (50 / 98)) < 1e-9);
  t.ok(Number.isNaN(histogramQuantile(0.99, new Array<number>(B).fill(0))), 'no requests: NaN');
  const inf = new Array<number>(B).fill(0);
  inf[B - 1] = 3;
  t.equal(histogramQuantile(0.99, inf), 10, '+Inf: the largest finite bound');

  const slow = [routerMsg('a', 0, { shop: { n: 0 } }, -1), routerMsg('a', 10_000, { shop: { n: 100, bucket: 7 } }, -1)];
  const fast = [routerMsg('b', 0, { shop: { n: 0 } }, -1), routerMsg('b', 10_000, { shop: { n: 100, bucket: 0 } }, -1)];
  const w = appWindow([slow, fast], 'shop', 10_000);
  t.ok(w.p99 > 0.5 && w.p99 <= 1, `half the requests between 0.5 s and 1 s: p99 ${w.p99}`);
  t.ok(w.p50 <= 0.005, `p50 ${w.p50}`);
});

t.test('chart series: steps of one app', async (t) => {
  const a = [0, 5_000, 10_000, 15_000].map((ts, i) => routerMsg('a', ts, { shop: { n: i * 50 } }, -1));
  const points = appSeries([a], 'shop', 15_000, 5_000, 3);
  t.same(points.map((p) => p.t), [5_000, 10_000, 15_000]);
  t.same(points.map((p) => p.rate), [10, 10, 10]);
  t.same(points[2]!.classes, [50, 0, 0, 0]);
  t.ok(points[2]!.p99 !== null && points[2]!.p99 > 0.01 && points[2]!.p99 <= 0.025);
  t.same(appSeries([a], 'shop', 40_000, 5_000, 1)[0]!.rate, 0, 'no samples in the step: 0');
});

const dea = (id: string, instances: Array<[string, 'RUNNING' | 'CRASHED', number]>): DeaStats => ({
  dea: id, ts: 0, memory: { total_mb: 4096, reserved_mb: 512 },
  instances: instances.map(([app, state, cpu], index) => ({ app, version: 'v1', instance: `${id}-${index}`, index, state, cpu, mem_kb: 1024, disk_bytes: 10 })),
});

t.test('CPU and running instances per app over DEAs', async (t) => {
  const deas = [dea('d1', [['shop', 'RUNNING', 30], ['shop', 'CRASHED', 0], ['blog', 'RUNNING', 5]]), dea('d2', [['shop', 'RUNNING', 45.5]])];
  t.equal(appCpu(deas, 'shop'), 75.5);
  t.equal(runningInstances(deas, 'shop'), 2);
  t.equal(appInstances(deas, 'shop').length, 3);
  t.equal(runningInstances(deas, 'none'), 0);
});

t.test('collector: restarts start over, silent senders are dropped, history is bounded', async (t) => {
  let now = 100_000;
  const c = new AppStatsCollector(null as never, silentLogger, { historyMs: 20_000, clock: () => now });
  c.addRouter(routerMsg('a', 90_000, { shop: { n: 100 } }));
  c.addRouter(routerMsg('a', 100_000, { shop: { n: 200 } }));
  t.equal(c.window('shop', 10_000).rate, 10);
  c.addRouter(routerMsg('a', 102_000, { shop: { n: 4 } }, 101_000));
  t.equal(c.routerHistories()[0]!.length, 1, 'a new start: the history starts over');
  t.equal(c.window('shop', 10_000).rate, 4, 'and counts from the new start (4 requests in 1 s)');
  c.addRouter(routerMsg('a', 104_000, { shop: { n: 2 } }, 101_000));
  t.equal(c.routerHistories()[0]!.length, 1, 'a smaller count with the same start: over again');
  for (let ts = 106_000; ts <= 160_000; ts += 2_000) c.addRouter(routerMsg('a', ts, { shop: { n: ts / 1000 } }, 101_000));
  const history = c.routerHistories()[0]!;
  t.ok(history.length <= 12 && history[0]!.ts <= 160_000 - 20_000, `history bounded to the window plus its base (${history.length})`);
  c.addDea(dea('d1', [['shop', 'RUNNING', 10]]));
  t.equal(c.latestDeas().length, 1);
  now += 14_000;
  t.equal(c.latestRouters().length, 1, 'heard 14 s ago: still there');
  now += 2_000;
  t.equal(c.latestRouters().length, 0, 'silent for 16 s: gone');
  t.equal(c.latestDeas().length, 0);
});

t.test('collector on a real bus: both subjects, malformed messages counted and logged', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const bus = await connectBus({ servers: nats.url, name: 'app-stats-test', logger: silentLogger });
  t.teardown(() => bus.close());
  const { logger, lines } = captureLog('collector');
  const collector = new AppStatsCollector(bus, logger);
  collector.start();
  t.teardown(() => collector.stop());
  await bus.flush();
  const now = Date.now();
  bus.publish(Subjects.routerAppStats, routerMsg('r1', now - 2000, { shop: { n: 10 } }, now - 60_000));
  bus.publish(Subjects.routerAppStats, routerMsg('r1', now, { shop: { n: 30 } }, now - 60_000));
  bus.publish(Subjects.routerAppStats, routerMsg('r2', now, { shop: { n: 5 } }, now - 60_000));
  bus.publish(Subjects.deaStats, dea('d1', [['shop', 'RUNNING', 12]]));
  bus.publish(Subjects.routerAppStats, { router: 'r3', apps: 'password=hunter2' });
  await eventually(() => collector.latestRouters().length === 2 && collector.latestDeas().length === 1, 'both routers and the DEA heard');
  t.equal(collector.totals().get('shop')!.count, 35, 'totals summed over routers');
  t.equal(collector.window('shop', 10_000).rate, 10, '20 requests in 2 s through r1; r2 has one message only');
  t.equal(appCpu(collector.latestDeas(), 'shop'), 12);
  await eventually(() => collector.rejections.total === 1, 'the malformed message counted');
  await eventually(() => lines.some((l) => l.includes('rejected message') && l.includes(Subjects.routerAppStats)), 'and logged');
  t.notOk(lines.join('\n').includes('hunter2'), 'without its content');
});
