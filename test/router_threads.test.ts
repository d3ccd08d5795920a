// `--threads N`: several router threads on one port, each with its own
// routing table. A route registered before the worker threads existed
// reaches them too (they load the first thread's table), later updates reach
// every thread, /varz adds up every thread's requests, and a drain ends all
// threads with exit 0 and no cut request.
import t from 'tap';
import { eventually, sleep, startNats } from './harness';
import { busClient, get, publish, registerRoute, startBackend, startRouter, unregisterRoute } from './router_harness';

t.test('--threads 2 serves one port from two threads with one routing table', async (t) => {
  const nats = await startNats(t);
  const nc = await busClient(t, nats);
  const early = await startBackend(t, (_req, res) => res.end('early'));
  const late = await startBackend(t, (_req, res) => res.end('late'));

  // Registered while the first thread waits to listen, once only: the worker
  // thread, started afterwards, can only know it from the first thread's table.
  const router = await startRouter(t, nats, { args: ['--threads', '2', '--start-delay', '3'], waitForListening: false });
  // The status port answers during the start delay; the app port does not yet.
  await eventually(async () => {
    await publish(nc, 'router.register', { host: '127.0.0.1', port: early.port, uris: ['early.localhost'] });
    const routes = await router.routes().catch(() => ({}));
    return (routes as Record<string, unknown>)['early.localhost'] !== undefined;
  }, 'the first thread to know the early route', 10_000);
  t.notOk(/router listening/.test(router.log()), 'registered before the router listened (and before its worker thread started)');
  await eventually(() => /router listening/.test(router.log()), 'router to listen', 15_000);

  const varz = await router.varz();
  t.equal(varz.threads, 2, '/varz reports two threads');

  // Fresh connections are spread by the kernel over both threads' listen sockets.
  const N = 60;
  const statuses: number[] = [];
  for (let i = 0; i < N; i++) {
    const reply = await get({ port: router.port, host: 'early.localhost' });
    statuses.push(reply.status);
    if (reply.status === 200) t.equal(reply.body.toString(), 'early');
  }
  t.same(
    statuses.filter((s) => s !== 200),
    [],
    'every request on every thread reaches the route registered before the worker thread started',
  );

  await registerRoute(nc, router, { port: late.port, uris: ['late.localhost'] });
  await eventually(async () => {
    const replies = await Promise.all(Array.from({ length: 10 }, () => get({ port: router.port, host: 'late.localhost' })));
    return replies.every((r) => r.status === 200 && r.body.toString() === 'late');
  }, 'a route registered later to answer on every thread', 10_000);

  await eventually(async () => {
    const v = await router.varz();
    return v.requests_per_thread.length === 2 && v.requests_per_thread.every((n: number) => n > 0) && v.requests >= N + 10;
  }, 'both threads to have served requests, and /varz to add them up', 5000);
  const after = await router.varz();
  t.equal(after.requests, after.requests_per_thread[0] + after.requests_per_thread[1], '/varz requests are the sum over threads');
  t.ok(after.responses_2xx >= N + 10, `2xx counted over both threads (${after.responses_2xx})`);

  await unregisterRoute(nc, router, { port: early.port, uris: ['early.localhost'] });
  await eventually(async () => {
    const replies = await Promise.all(Array.from({ length: 10 }, () => get({ port: router.port, host: 'early.localhost' })));
    // The route stays known with no endpoint, as in gorouter: 503 no_endpoints.
    return replies.every((r) => r.status === 503 && r.headers['x-cf-routererror'] === 'no_endpoints');
  }, 'an unregister to reach every thread', 10_000);

  const code = await router.stop();
  t.equal(code, 0, 'SIGTERM ends every thread and the router exits 0');
});

t.test('a drain with --threads lets in-flight requests on every thread finish', async (t) => {
  const nats = await startNats(t);
  const nc = await busClient(t, nats);
  const backend = await startBackend(t, (_req, res) => setTimeout(() => res.end('slow-done'), 1500));
  const router = await startRouter(t, nats, { args: ['--threads', '2'] });
  await registerRoute(nc, router, { port: backend.port, uris: ['slow.localhost'] });
  await sleep(300);

  // Enough connections that both threads hold some.
  const pending = Array.from({ length: 16 }, () => get({ port: router.port, host: 'slow.localhost' }));
  await eventually(() => backend.requests.length === 16, 'all requests to reach the app', 1000);
  // Worker figures are at most a second old, and the app answers after 1.5 s.
  await eventually(
    async () => (await router.varz()).requests_per_thread.every((n: number) => n > 0),
    'requests in flight on both threads',
    1200,
  );
  router.signal('SIGTERM');
  const replies = await Promise.all(pending);
  t.same(
    replies.map((r) => `${r.status} ${r.body}`),
    replies.map(() => '200 slow-done'),
    'every in-flight request finished',
  );
  const exit = await router.exited;
  t.equal(exit.code, 0, 'exit 0');
  t.notOk(/Assertion failed|uv_loop_close/.test(router.log()), 'no thread aborted at exit');
});

t.test('--threads must be a whole number from 1 to 64', async (t) => {
  const nats = await startNats(t);
  for (const bad of ['0', '1.5', '65']) {
    const router = await startRouter(t, nats, { args: ['--threads', bad], waitForListening: false });
    const exit = await router.exited;
    t.equal(exit.code, 2, `--threads ${bad}: usage error`);
    t.match(router.log(), /--threads/, 'the error names the flag');
  }
});

t.test('--threads 2 with --access-log: every thread writes its lines, and SIGHUP reopens the file on every thread', async (t) => {
  const { mkdtempSync, readFileSync, renameSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'skiff-threads-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const logPath = join(dir, 'access.log');
  const nats = await startNats(t);
  const nc = await busClient(t, nats);
  const backend = await startBackend(t, (_req, res) => res.end('ok'));
  const router = await startRouter(t, nats, { args: ['--threads', '2', '--access-log', logPath] });
  await registerRoute(nc, router, { port: backend.port, uris: ['logged.localhost'] });
  await sleep(300); // the worker thread's own subscription has the route too
  const lines = (path: string): string[] => readFileSync(path, 'utf8').split('\n').filter((l) => l.includes('logged.localhost'));

  const N = 40;
  for (let i = 0; i < N; i++) await get({ port: router.port, host: 'logged.localhost', path: `/before/${i}` });
  await eventually(async () => (await router.varz()).requests_per_thread.every((n: number) => n > 0), 'both threads to have served', 3000);
  await eventually(() => lines(logPath).length === N, `all ${N} lines written`, 5000);

  renameSync(logPath, `${logPath}.1`);
  router.signal('SIGHUP');
  await sleep(300);
  for (let i = 0; i < N; i++) await get({ port: router.port, host: 'logged.localhost', path: `/after/${i}` });
  await eventually(() => {
    try {
      return lines(logPath).length === N;
    } catch {
      return false;
    }
  }, 'the new file to get every later line', 5000);
  t.equal(lines(`${logPath}.1`).length, N, 'the rotated file kept the earlier lines, and got no later ones');
  t.ok(lines(logPath).every((l) => l.includes('/after/')), 'the new file has only later lines');
});
