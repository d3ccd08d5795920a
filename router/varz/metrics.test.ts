import t from 'tap';
import { formatUptime, isoSeconds } from '../../bus/component';
import { escapeLabelValue, PrometheusText } from './metrics';
import { RouterStats } from './varz';

t.test('exposition text: HELP, TYPE, labels escaped, summary parts', async (t) => {
  const text = new PrometheusText()
    .counter('x_total', 'a "help"\nline', [[{ app_id: 'a"b\\c\nd' }, 3]])
    .summary('lat_seconds', 'latency', [[0.5, 0.001]], 0.5, 10)
    .gauge('g', 'gauge', NaN)
    .toString();
  t.equal(
    text,
    '# HELP x_total a "help"\\nline\n# TYPE x_total counter\nx_total{app_id="a\\"b\\\\c\\nd"} 3\n' +
      '# HELP lat_seconds latency\n# TYPE lat_seconds summary\nlat_seconds{quantile="0.5"} 0.001\nlat_seconds_sum 0.5\nlat_seconds_count 10\n' +
      '# HELP g gauge\n# TYPE g gauge\ng NaN\n',
  );
  t.equal(escapeLabelValue('plain'), 'plain');
  t.throws(() => new PrometheusText().counter('bad-name', 'x', 1));
  t.throws(() => new PrometheusText().counter('a_total', 'x', 1).counter('a_total', 'x', 1), 'a family only once');
});

t.test('top apps by requests, bounded', async (t) => {
  const s = new RouterStats();
  for (let i = 0; i < 15; i++) for (let n = 0; n <= i; n++) s.countApp(`app-${i}`);
  s.countApp('');
  t.same(
    s.topApps(3),
    [
      { appId: 'app-14', requests: 15 },
      { appId: 'app-13', requests: 14 },
      { appId: 'app-12', requests: 13 },
    ],
  );
  t.equal(s.topApps().length, 10);
});

t.test('component uptime and start formats (CF v1)', async (t) => {
  t.equal(formatUptime(303_999), '0d:0h:5m:3s');
  t.equal(formatUptime(((2 * 24 + 3) * 3600 + 4 * 60 + 5) * 1000), '2d:3h:4m:5s');
  t.equal(formatUptime(-5), '0d:0h:0m:0s');
  t.equal(isoSeconds(new Date('2026-11-25T10:00:00.123Z')), '2026-11-25T10:00:00Z');
});
