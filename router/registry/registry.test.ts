import t from 'tap';
import type { Backend } from '../route/backend';
import { Registry } from './registry';

let clock = 0;
function registry(removed: Backend[] = []): Registry {
  clock = 0;
  return new Registry({ defaultStaleThresholdMs: 120_000, emptyPoolTtlMs: 10_000, onBackendRemoved: (b) => removed.push(b), clock: () => clock });
}

t.test('register, look up, unregister', async (t) => {
  const r = registry();
  r.register({ host: '127.0.0.1', port: 1, uris: ['Shop.localhost', 'shop.localhost/api'] }, 0);
  r.register({ host: '127.0.0.1', port: 2, uris: ['shop.localhost'] }, 0);
  t.equal(r.routeCount, 2);
  t.equal(r.endpointCount, 3);
  t.equal(r.lookup('shop.localhost', '/')!.endpoints.length, 2);
  t.equal(r.lookup('shop.localhost', '/api/x')!.contextPath, '/api');
  t.equal(r.lookup('shop.localhost', '/API')!.contextPath, '/api');
  t.equal(r.lookup('shop.localhost', '/apix')!.contextPath, '');
  t.equal(r.lookup('other.localhost', '/'), undefined);
  r.unregister({ host: '127.0.0.1', port: 1, uris: ['shop.localhost/api'] }, 5);
  t.equal(r.lookup('shop.localhost', '/api')!.endpoints.length, 0, 'emptied route kept (503) for the empty-pool timeout');
  t.equal(r.endpointCount, 2);
  clock = 10_005;
  t.equal(r.lookup('shop.localhost', '/api/x')!.contextPath, '', 'then unknown: the request falls to the root route');
  r.unregister({ host: '127.0.0.1', port: 1, uris: ['shop.localhost'] }, 10_010);
  t.equal(r.lookup('shop.localhost', '/')!.endpoints.length, 1, 'a route with an endpoint left is served');
  r.unregister({ host: '127.0.0.1', port: 2, uris: ['shop.localhost'] }, 10_020);
  clock = 10_020 + 9_999;
  t.ok(r.lookup('shop.localhost', '/'), '503 while within the timeout');
  clock = 10_020 + 10_000;
  t.equal(r.lookup('shop.localhost', '/'), undefined, '404 after it');
  r.register({ host: '127.0.0.1', port: 3, uris: ['shop.localhost'] }, clock);
  t.equal(r.lookup('shop.localhost', '/')!.endpoints.length, 1, 'a new registration brings it back');
});

t.test('re-registering refreshes instead of duplicating', async (t) => {
  const r = registry();
  const msg = { host: '127.0.0.1', port: 1, uris: ['a.localhost'], app: 'x', private_instance_index: '0' };
  r.register(msg, 0);
  r.register({ ...msg, private_instance_index: '1' }, 50_000);
  const pool = r.lookup('a.localhost', '/')!;
  t.equal(pool.endpoints.length, 1);
  t.equal(pool.endpoints[0].updatedAt, 50_000);
  t.equal(pool.endpoints[0].instanceIndex, '1');
});

t.test('longest context path wins', async (t) => {
  const r = registry();
  r.register({ host: 'h', port: 1, uris: ['a.localhost/api'] }, 0);
  r.register({ host: 'h', port: 2, uris: ['a.localhost/api/v2'] }, 0);
  r.register({ host: 'h', port: 3, uris: ['a.localhost'] }, 0);
  t.equal(r.lookup('a.localhost', '/api/v2/x')!.contextPath, '/api/v2');
  t.equal(r.lookup('a.localhost', '/api/v3')!.contextPath, '/api');
  t.equal(r.lookup('a.localhost', '/')!.contextPath, '');
});

t.test('wildcards resolve, and the cache follows table changes', async (t) => {
  const r = registry();
  r.register({ host: 'h', port: 1, uris: ['*.apps.localhost'] }, 0);
  t.equal(r.lookup('a.apps.localhost', '/')!.host, '*.apps.localhost');
  t.equal(r.lookup('x.y.apps.localhost', '/')!.host, '*.apps.localhost');
  t.equal(r.lookup('apps.localhost', '/'), undefined);
  t.equal(r.lookup('b.other.localhost', '/'), undefined, 'miss cached');
  r.register({ host: 'h', port: 2, uris: ['a.apps.localhost', 'b.other.localhost'] }, 0);
  t.equal(r.lookup('a.apps.localhost', '/')!.host, 'a.apps.localhost', 'exact host beats the cached wildcard');
  t.equal(r.lookup('b.other.localhost', '/')!.host, 'b.other.localhost', 'cached miss forgotten');
  r.unregister({ host: 'h', port: 2, uris: ['a.apps.localhost'] }, 0);
  r.prune(20_000);
  t.equal(r.lookup('a.apps.localhost', '/')!.host, '*.apps.localhost', 'pruned exact host falls back to the wildcard');
});

t.test('prune removes stale endpoints, then empty routes after their grace time', async (t) => {
  const removed: Backend[] = [];
  const r = registry(removed);
  r.register({ host: 'h', port: 1, uris: ['a.localhost'], stale_threshold_in_seconds: 10 }, 0);
  r.register({ host: 'h', port: 2, uris: ['a.localhost'] }, 0);
  t.equal(r.prune(5_000), 0);
  t.equal(r.prune(11_000), 1, 'the endpoint with a 10 s threshold goes');
  t.same(removed.map((b) => b.key), ['h:1']);
  t.equal(r.prune(121_000), 1, 'the default 120 s threshold');
  t.equal(r.lookup('a.localhost', '/')!.endpoints.length, 0, 'route kept while empty for its grace time');
  r.prune(131_000);
  t.equal(r.lookup('a.localhost', '/'), undefined, 'then forgotten');
  t.equal(r.routeCount, 0);
});

t.test('refreshAll restarts every stale clock', async (t) => {
  const r = registry();
  r.register({ host: 'h', port: 1, uris: ['a.localhost'], stale_threshold_in_seconds: 10 }, 0);
  r.refreshAll(100_000);
  t.equal(r.prune(105_000), 0);
  t.equal(r.prune(111_000), 1);
});

t.test('a backend shared by two routes is released only when both are gone', async (t) => {
  const removed: Backend[] = [];
  const r = registry(removed);
  r.register({ host: 'h', port: 1, uris: ['a.localhost', 'b.localhost'] }, 0);
  t.equal(r.lookup('a.localhost', '/')!.endpoints[0].backend, r.lookup('b.localhost', '/')!.endpoints[0].backend);
  r.unregister({ host: 'h', port: 1, uris: ['a.localhost'] }, 0);
  t.equal(removed.length, 0);
  r.unregister({ host: 'h', port: 1, uris: ['b.localhost'] }, 0);
  t.equal(removed.length, 1);
});

t.test('per-route load balancing comes from the register options', async (t) => {
  const r = registry();
  r.register({ host: 'h', port: 1, uris: ['a.localhost'], options: { loadbalancing: 'least-connection' } }, 0);
  r.register({ host: 'h', port: 2, uris: ['b.localhost'] }, 0);
  t.equal(r.lookup('a.localhost', '/')!.algorithm, 'least-connection');
  t.equal(r.lookup('b.localhost', '/')!.algorithm, undefined);
});

t.test('session affinity holds while any endpoint of the route registered with it', async (t) => {
  const r = registry();
  const at = (port: number, affinity: boolean) =>
    r.register({ host: 'h', port, uris: ['a.localhost', 'a.localhost/api'], private_instance_id: `i-${port}`, ...(affinity && { options: { session_affinity: true } }) }, 0);
  at(1, false);
  const root = r.lookup('a.localhost', '/')!;
  t.equal(root.sessionAffinity, false, 'off by default');
  at(2, true);
  t.equal(root.sessionAffinity, true, 'one endpoint asking turns it on');
  t.equal(r.lookup('a.localhost', '/api')!.sessionAffinity, true, 'for each uri of the message');
  at(1, false);
  t.equal(root.sessionAffinity, true, "an endpoint that never asked does not turn it off (a DEA that has not applied the change yet)");
  t.same(r.registrations(0).filter((m) => m.port === 2).map((m) => m.options), [{ session_affinity: true }, { session_affinity: true }], 'a worker thread gets it with the table');
  t.same(r.snapshot(0)['a.localhost'].map((e) => e.session_affinity), [undefined, true], '/routes shows it');
  at(2, false);
  t.equal(root.sessionAffinity, false, 'off once the endpoint that asked registers without it');
  at(2, true);
  r.unregister({ host: 'h', port: 2, uris: ['a.localhost'] }, 0);
  t.equal(root.sessionAffinity, false, 'off once the endpoint that asked leaves');
  t.equal(r.lookup('a.localhost', '/api')!.sessionAffinity, true, 'the other route keeps it');
});

t.test('snapshot lists uris with their endpoints', async (t) => {
  const r = registry();
  r.register({ host: '127.0.0.1', port: 1, uris: ['a.localhost/x'], app: 'app', private_instance_id: 'i', private_instance_index: '0' }, 0);
  const snap = r.snapshot(1000);
  t.same(Object.keys(snap), ['a.localhost/x']);
  t.match(snap['a.localhost/x'][0], { address: '127.0.0.1:1', app_id: 'app', private_instance_id: 'i', ttl: 119 });
});
