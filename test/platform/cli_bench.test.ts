// `skiff bench` on a real platform (`skiff up` on free ports) against an app
// whose answers the test knows (test/fixtures/load-app): the --json figures
// agree with what the app served and how it answered, the table has its
// columns and the router's overhead, the config store's bounds refuse a
// larger run in one line, and another user's app is refused before any
// request reaches it.

import { join } from 'node:path';
import t from 'tap';
import { finish, skiff, spawnSkiff, tempHome, type SkiffRun } from '../cli_harness';
import { eventually } from '../harness';
import { platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';
import { get } from '../router_harness';

const LOAD_APP = join(__dirname, '..', 'fixtures', 'load-app');


interface Run {
  url: string;
  duration: number;
  requests: number;
  rps: number;
  latency_ms: { p50: number; p90: number; p99: number; max: number; mean: number };
  bytes: number;
  errors: number;
  non_2xx: number;
  status_codes: Record<string, number>;
  timeline: Array<{ second: number; requests: number; non_2xx: number }>;
  histogram: { bounds_ms: number[]; counts: number[] };
}

interface Report {
  app: string;
  connections: number;
  router: Run;
  direct?: Run & { instance: number };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

t.test('skiff bench: table, --json against a known load, --compare-direct, bounds, ownership', async (t) => {
  const dataDir = platformDataDir(t, 'skiff-bench-');
  const home = tempHome(t);
  const ports = await platformPorts();
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 400_000);
  await eventually(() => platform.out().includes('router: '), 'skiff up to print its router line', 90_000);
  const bench = (args: string[], who = home): Promise<SkiffRun> => finish(spawnSkiff(['bench', ...args], who), 90_000);
  const served = async () => (JSON.parse((await get({ port: ports.router, host: 'load-app.localhost', path: '/count' })).body.toString()) as { served: number }).served;

  const pushed = await finish(spawnSkiff(['push', LOAD_APP, '--memory', '64M'], home), 180_000);
  t.equal(pushed.code, 0, `push load-app (${pushed.stderr.trim().split('\n').slice(-2).join(' | ')})`);

  await t.test('--json on a path that answers after 50 ms: the figures are what the app did', async (t) => {
    const before = await served();
    const run = await bench(['load-app', '--path', '/slow', '--connections', '2', '--duration', '3', '--json']);
    t.equal(run.code, 0, run.stderr);
    const after = await served();
    const report = JSON.parse(run.stdout) as Report;
    const r = report.router;
    t.equal(report.app, 'load-app');
    t.equal(report.connections, 2);
    t.equal(r.url, `http://load-app.localhost:${ports.router}/slow`);
    t.ok(r.requests > 0, `requests were made (${r.requests})`);
    // The run ends with a request in flight on each connection: the app served it, the run does not count it.
    const unanswered = after - before - r.requests;
    t.ok(unanswered >= 0 && unanswered <= 2, `as many responses as the app served, but for one in flight per connection at the end (${r.requests} of ${after - before})`);
    t.same(r.status_codes, { '200': r.requests }, 'all 200');
    t.equal(r.non_2xx, 0);
    t.equal(r.errors, 0);
    // Two connections, one request at a time each, none faster than 50 ms.
    t.ok(r.requests <= Math.ceil((2 * r.duration) / 0.05) + 2, `no more requests than 2 connections can make at 50 ms each (${r.requests} in ${r.duration} s)`);
    t.ok(r.latency_ms.p50 >= 50 && r.latency_ms.p50 < 2000, `p50 is at least the app's 50 ms (${r.latency_ms.p50})`);
    t.ok(r.latency_ms.p50 <= r.latency_ms.p90 && r.latency_ms.p90 <= r.latency_ms.p99 && r.latency_ms.p99 <= r.latency_ms.max, 'percentiles in order');
    t.ok(r.bytes >= r.requests * 64, 'every 64-byte body counted in the bytes');
    t.equal(r.timeline.length, 3, 'one point per second');
    t.equal(sum(r.timeline.map((p) => p.requests)), r.requests, 'the timeline adds up');
    t.equal(sum(r.histogram.counts), r.requests, 'the histogram adds up');
    const under50 = sum(r.histogram.counts.filter((_, i) => r.histogram.bounds_ms[i]! < 50));
    t.equal(under50, 0, 'no response in a bucket below 50 ms');
    t.equal(report.direct, undefined, 'no direct run unless asked');
  });

  await t.test('--json on a failing path: every response is a non-2xx, none an error', async (t) => {
    const run = await bench(['load-app', '--path', '/fail', '--connections', '2', '--duration', '2', '--json']);
    t.equal(run.code, 0, run.stderr);
    const r = (JSON.parse(run.stdout) as Report).router;
    t.ok(r.requests > 0);
    t.equal(r.non_2xx, r.requests);
    t.same(r.status_codes, { '503': r.requests });
    t.equal(r.errors, 0);
    t.equal(sum(r.timeline.map((p) => p.non_2xx)), r.requests);
  });

  await t.test('the table, with --compare-direct: the router and one instance, and the overhead', async (t) => {
    const run = await bench(['load-app', '--connections', '2', '--duration', '2', '--compare-direct']);
    t.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trimEnd().split('\n');
    t.match(lines[0], /^TARGET\s+REQ\/S\s+P50\s+P90\s+P99\s+MAX\s+THROUGHPUT\s+REQUESTS\s+ERRORS\s+NON-2XX$/, 'the header');
    t.match(lines[1], /^router\s+\d+\.\d\s+[\d.]+ms\s+[\d.]+ms\s+[\d.]+ms\s+[\d.]+ms\s+[\d.]+[BKMG]\/s\s+[1-9]\d*\s+0\s+0$/, 'the router row');
    t.match(lines[2], /^instance 0\s+\d+\.\d\s+[\d.]+ms/, 'the direct row');
    t.match(run.stdout, /^router overhead: [+-][\d.]+ms p50, [+-][\d.]+ms p99$/m);
    t.match(run.stderr, `bench: 2 connections for 2 s on http://load-app.localhost:${ports.router}/ (router)`, 'says what it runs');
    t.match(run.stderr, /bench: 2 connections for 2 s on http:\/\/127\.0\.0\.1:\d+\/ \(instance 0\)/);
  });

  await t.test('bad flags and the config store bounds: one line, exit 2, no load', async (t) => {
    const before = await served();
    let run = await bench(['load-app', '--path', 'nope']);
    t.equal(run.code, 2);
    t.equal(run.stderr, 'skiff bench: --path must start with / and hold no spaces, got "nope"\n');
    t.equal((await skiff(['config', 'set', 'bench.max_connections', '4'], home)).code, 0);
    t.equal((await skiff(['config', 'set', 'bench.max_duration', '2'], home)).code, 0);
    run = await bench(['load-app', '--connections', '5', '--duration', '1']);
    t.equal(run.code, 2);
    t.equal(run.stderr, "skiff bench: --connections 5 is over the platform's limit of 4 (config store: bench.max_connections)\n");
    run = await bench(['load-app', '--connections', '4', '--duration', '3']);
    t.equal(run.code, 2);
    t.equal(run.stderr, "skiff bench: --duration 3 is over the platform's limit of 2 s (config store: bench.max_duration)\n");
    t.equal(await served(), before, 'nothing reached the app');
    await skiff(['config', 'unset', 'bench.max_connections'], home);
    await skiff(['config', 'unset', 'bench.max_duration'], home);
  });

  await t.test("another user's app is refused before any request is sent", async (t) => {
    t.equal((await skiff(['add-user', 'bob@example.com', '--password', 'bob-password-1'], home)).code, 0);
    const bob = tempHome(t);
    t.equal((await skiff(['target', `http://127.0.0.1:${ports.api}`], bob)).code, 0);
    t.equal((await skiff(['login', '--email', 'bob@example.com', '--password', 'bob-password-1'], bob)).code, 0);
    const before = await served();
    const run = await bench(['load-app', '--duration', '1'], bob);
    t.equal(run.code, 1);
    t.equal(run.stderr, 'skiff bench: app load-app belongs to another user\n');
    t.equal(await served(), before, 'nothing reached the app');
  });
});
