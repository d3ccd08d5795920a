// GET /metrics on the API of `skiff up` (design.md, Operator view): one
// scrape target for the cluster. Traffic sent through two routers (the
// platform's and a second one) shows up per app, summed, rising with the
// traffic; the DEA's instances and memory are there; only an admin, by
// token or by HTTP basic auth, may read it. Every process is ended by pid.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { finish, spawnSkiff, tempHome } from '../cli_harness';
import { eventually } from '../harness';
import { platformCredentials, platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';
import { get, startRouter } from '../router_harness';

const HELLO = join(__dirname, '..', '..', 'examples', 'hello-node');

/** The value of one series in Prometheus text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && line.split(' ')[0] !== name) continue;
    const [series, value] = [line.slice(0, line.lastIndexOf(' ')), line.slice(line.lastIndexOf(' ') + 1)];
    if (!series.startsWith(name) || (series.length > name.length && series[name.length] !== '{')) continue;
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) return Number(value);
  }
  return undefined;
}

t.test('/metrics: per-app series from two routers and the DEA, for admins', async (t) => {
  const dataDir = platformDataDir(t, 'skiff-metrics-');
  const home = tempHome(t);
  const ports = await platformPorts();
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 300_000);
  await eventually(() => /^router: http/m.test(platform.out()), 'skiff up to print its router line', 60_000);
  const pushed = await finish(spawnSkiff(['push', HELLO, '--name', 'hello'], home), 120_000);
  t.equal(pushed.code, 0, pushed.stderr);

  const admin = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as { email: string; password: string };
  const basic = `Basic ${Buffer.from(`${admin.email}:${admin.password}`).toString('base64')}`;
  const scrape = async (authorization = basic) => {
    const reply = await get({ port: ports.api, path: '/metrics', headers: { authorization } });
    return { status: reply.status, text: reply.body.toString(), headers: reply.headers };
  };

  // A second router on the same bus, as its own NATS user.
  const second = await startRouter(t, { url: `nats://127.0.0.1:${ports.nats}` } as never, {
    args: ['--nats-credentials', platformCredentials(dataDir, 'router')],
  });
  await eventually(async () => (await get({ port: second.port, host: 'hello.localhost' })).status === 200, 'the second router to route hello', 30_000);

  const send = async (port: number, n: number) => {
    for (let i = 0; i < n; i++) t.equal((await get({ port, host: 'hello.localhost' })).status, 200);
  };
  await send(ports.router, 30);
  await send(second.port, 20);
  let first = '';
  await eventually(async () => {
    first = (await scrape()).text;
    return (sample(first, 'skiff_app_requests_total', { app: 'hello', code: '200' }) ?? 0) >= 50;
  }, 'the requests through both routers in /metrics', 20_000);
  const routers = first.split('\n').filter((l) => l.startsWith('skiff_router_requests_total{'));
  t.equal(routers.length, 2, `two routers: ${routers.join('; ')}`);
  t.ok(routers.every((l) => Number(l.split(' ').pop()) >= 20), 'each counted what it passed on');
  t.ok((sample(first, 'skiff_app_request_duration_seconds_count', { app: 'hello' }) ?? 0) >= 50, 'latency histogram per app');
  t.equal(sample(first, 'skiff_app_request_duration_seconds_bucket', { app: 'hello', le: '+Inf' }), sample(first, 'skiff_app_request_duration_seconds_count', { app: 'hello' }));
  t.match(first, /# TYPE skiff_app_request_duration_seconds histogram/);
  await eventually(async () => sample((await scrape()).text, 'skiff_app_instances', { app: 'hello', state: 'RUNNING' }) === 1, 'the running instance from dea.stats', 20_000);
  const usage = (await scrape()).text;
  t.ok((sample(usage, 'skiff_dea_memory_reserved_bytes', {}) ?? 0) >= 128 * 1048576, 'the DEA\'s reserved memory');
  t.ok((sample(usage, 'skiff_app_memory_bytes', { app: 'hello' }) ?? 0) > 1_000_000, 'the app\'s memory');
  t.equal(sample(usage, 'skiff_app_desired_instances', { app: 'hello' }), 1);
  t.ok((sample(usage, 'skiff_controller_http_requests_total', { method: 'GET', code: '200' }) ?? 0) > 0, 'the controller\'s own requests');
  t.ok((sample(usage, 'skiff_controller_placements_total', { result: 'placed' }) ?? 0) >= 1, 'and placements');
  t.notOk(usage.includes(admin.password), 'no password in it');

  // Rising with the traffic.
  const before = sample(usage, 'skiff_app_requests_total', { app: 'hello', code: '200' })!;
  await send(second.port, 25);
  await eventually(async () => (sample((await scrape()).text, 'skiff_app_requests_total', { app: 'hello', code: '200' }) ?? 0) >= before + 25, 'the series to rise', 20_000);

  // Who may read it.
  const none = await get({ port: ports.api, path: '/metrics' });
  t.equal(none.status, 401, 'no credentials: 401');
  t.match(String(none.headers['www-authenticate']), /^Basic /, 'with a Basic challenge for Prometheus');
  t.equal((await scrape(`Basic ${Buffer.from(`${admin.email}:wrong`).toString('base64')}`)).status, 401, 'a wrong password: 401');
  const login = await get({ port: ports.api, method: 'POST', path: `/users/${encodeURIComponent(admin.email)}/tokens`, body: JSON.stringify({ password: admin.password }), headers: { 'content-type': 'application/json' } });
  const token = (JSON.parse(login.body.toString()) as { token: string }).token;
  t.equal((await scrape(`Bearer ${token}`)).status, 200, 'an admin token works too');
  const added = await get({ port: ports.api, method: 'POST', path: '/users', body: JSON.stringify({ email: 'dev@example.com', password: 'dev-password-1' }), headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
  t.equal(added.status, 201, added.body.toString());
  t.equal((await scrape(`Basic ${Buffer.from('dev@example.com:dev-password-1').toString('base64')}`)).status, 403, 'a user who is not an admin: 403');

  await second.stop();
  t.equal(await platform.stop(), 0);
});
