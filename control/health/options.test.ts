import { hostname } from 'node:os';
import t from 'tap';
import { UsageError } from '../../bus/flags';
import { parseHealthOptions } from './options';

t.test('flags and environment', async (t) => {
  t.same(parseHealthOptions([], {}), { help: false, nats: 'nats://127.0.0.1:4222', node: hostname(), overrides: {}, metrics: { port: 0, host: '0.0.0.0', user: 'metrics', password: '' } });
  const o = parseHealthOptions(['--nats', 'nats://h:1', '--droplet-lost', '5', '--giveup-crash-number', '2'], { SKIFF_HEALTH_MIN_RESTART_DELAY: '0.5', SKIFF_NODE: 'node-2' });
  t.same(o, { help: false, nats: 'nats://h:1', node: 'node-2', overrides: { dropletLostMs: 5000, giveupCrashNumber: 2, minRestartDelayMs: 500 }, metrics: { port: 0, host: '0.0.0.0', user: 'metrics', password: '' } });
  t.equal(parseHealthOptions([], { NATS_URL: 'nats://e:2' }).nats, 'nats://e:2');
});

t.test('bad arguments are one clear UsageError', async (t) => {
  t.throws(() => parseHealthOptions(['--droplet-lost', 'soon'], {}), new UsageError('--droplet-lost must be a number, got "soon"'));
  t.throws(() => parseHealthOptions(['--flapping-death', '1.5'], {}), new UsageError('--flapping-death: must be a whole number 0-1000'));
  t.throws(() => parseHealthOptions(['--analysis-interval', '0'], {}), new UsageError('--analysis-interval must be at least 0.05, got 0'));
  t.throws(() => parseHealthOptions(['--bogus'], {}), new UsageError('unknown option --bogus'));
  t.throws(() => parseHealthOptions(['extra'], {}), new UsageError('unexpected argument "extra"'));
  t.throws(() => parseHealthOptions(['--node', 'a b'], {}), new UsageError(`--node must be 1-63 letters, digits, '_' or '-', starting with a letter or digit, got "a b"`));
  t.throws(() => parseHealthOptions([], { SKIFF_NODE: '-x' }), /^SKIFF_NODE must be/, 'the environment is named when it is the culprit');
});
