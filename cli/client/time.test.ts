import t from 'tap';
import { formatAgo, formatTimestamp, formatUptime } from './time';

t.test('uptime', async (t) => {
  t.equal(formatUptime(0), '0d:0h:0m:0s');
  t.equal(formatUptime(120.5), '0d:0h:2m:0s');
  t.equal(formatUptime(90061), '1d:1h:1m:1s');
  t.equal(formatUptime(-3), '-');
  t.equal(formatUptime(Number.NaN), '-');
});

t.test('timestamp is local time, zero-padded', async (t) => {
  const when = new Date(2026, 0, 2, 3, 4, 5); // local
  t.equal(formatTimestamp(when.getTime() / 1000), '2026-01-02 03:04:05');
  t.equal(formatTimestamp(0), '-');
});

t.test('ago', async (t) => {
  const now = 1_764_100_000_000;
  t.equal(formatAgo(now / 1000 - 12, now), '12s ago');
  t.equal(formatAgo(now / 1000 - 300, now), '5m ago');
  t.equal(formatAgo(now / 1000 - 3 * 3600, now), '3h ago');
  t.equal(formatAgo(now / 1000 - 2 * 86400, now), '2d ago');
  t.equal(formatAgo(now / 1000 + 10, now), '0s ago');
});
