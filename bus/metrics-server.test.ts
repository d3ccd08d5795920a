import t from 'tap';
import { Counter, Registry } from 'prom-client';
import { parseFlags } from './flags';
import { forgetMetricsPassword, METRICS_FLAGS, metricsOptions, MetricsServer, processRegistry, serveMetrics } from './metrics-server';

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => metricsOptions(parseFlags(argv, METRICS_FLAGS, 'SKIFF_DEA', env), 'SKIFF_DEA');

t.test('flags: off by default; a port needs a password from the environment', async (t) => {
  t.same(parse([]), { port: 0, host: '0.0.0.0', user: 'metrics', password: '' });
  t.same(parse(['--metrics-port', '9100', '--metrics-host', '127.0.0.1'], { SKIFF_DEA_METRICS_PASSWORD: 'a-long-password', SKIFF_DEA_METRICS_USER: 'prom' }),
    { port: 9100, host: '127.0.0.1', user: 'prom', password: 'a-long-password' });
  t.throws(() => parse(['--metrics-port', '9100']), { name: 'UsageError', message: /needs SKIFF_DEA_METRICS_PASSWORD/ });
  t.throws(() => parse(['--metrics-port', '9100'], { SKIFF_DEA_METRICS_PASSWORD: 'short' }), { message: /at least 12/ });
  t.throws(() => parse(['--metrics-password', 'a-long-password-here']), { message: /give the metrics password in SKIFF_DEA_METRICS_PASSWORD/ });
  try {
    parse(['--metrics-password', 'a-long-password-here']);
  } catch (error) {
    t.notMatch((error as Error).message, /a-long-password-here/, 'the error never shows the password');
  }
  t.throws(() => parse(['--metrics-port', '1.5'], { SKIFF_DEA_METRICS_PASSWORD: 'a-long-password' }), { message: /whole number/ });
  const env: NodeJS.ProcessEnv = { SKIFF_DEA_METRICS_PASSWORD: 'x', OTHER: 'y' };
  forgetMetricsPassword('SKIFF_DEA', env);
  t.same(env, { OTHER: 'y' });
});

t.test('GET /metrics on a real socket: basic auth, only /metrics, the registries merged', async (t) => {
  const own = new Registry();
  const counter = new Counter({ name: 'skiff_test_things_total', help: 'things', registers: [own] });
  counter.inc(3);
  const server = new MetricsServer([own, processRegistry()], { user: 'metrics', password: 'a-long-password' });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${port}`;
  const auth = { Authorization: `Basic ${Buffer.from('metrics:a-long-password').toString('base64')}` };

  const anonymous = await fetch(`${base}/metrics`);
  t.equal(anonymous.status, 401);
  t.match(anonymous.headers.get('www-authenticate'), /^Basic /);
  const wrong = await fetch(`${base}/metrics`, { headers: { Authorization: `Basic ${Buffer.from('metrics:nope').toString('base64')}` } });
  t.equal(wrong.status, 401, 'a wrong password is refused');

  const ok = await fetch(`${base}/metrics`, { headers: auth });
  t.equal(ok.status, 200);
  t.match(ok.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const body = await ok.text();
  t.match(body, /^skiff_test_things_total 3$/m, 'the role\'s own figures');
  t.match(body, /^process_resident_memory_bytes \d+/m, 'and the process\'s');

  t.equal((await fetch(`${base}/varz`, { headers: auth })).status, 404);
  t.equal((await fetch(`${base}/metrics`, { method: 'POST', headers: auth })).status, 405);
  t.equal(server.reachableAt(), `127.0.0.1:${port}`);
  t.same(server.announced().credentials, ['metrics', 'a-long-password']);
});

t.test('serveMetrics: nothing for port 0, one clear error for a taken port', async (t) => {
  t.equal(await serveMetrics({ port: 0, host: '127.0.0.1', user: 'metrics', password: '' }, []), undefined);
  const holder = new MetricsServer([new Registry()], { user: 'm', password: 'a-long-password' });
  const port = await holder.listen(0, '127.0.0.1');
  t.teardown(() => holder.close());
  await t.rejects(serveMetrics({ port, host: '127.0.0.1', user: 'm', password: 'a-long-password' }, [new Registry()]), { message: `metrics port 127.0.0.1:${port} is taken` });
});
