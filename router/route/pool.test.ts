import t from 'tap';
import { Backend } from './backend';
import { Endpoint, EndpointPool, OVERLOADED, parseLbAlgorithm, type PickLimits } from './pool';

function poolOf(n: number): EndpointPool {
  const pool = new EndpointPool('app.localhost', '');
  for (let i = 0; i < n; i++) pool.add(new Endpoint(new Backend('127.0.0.1', 61000 + i), 'app', `i-${i}`, String(i), undefined, 120_000, 0));
  return pool;
}
const limits = (over: Partial<PickLimits> = {}): PickLimits => ({ now: 1_000_000, coolDownMs: 30_000, maxConnsPerBackend: 500, ...over });

t.test('round-robin visits every endpoint in turn', async (t) => {
  const pool = poolOf(3);
  const counts = new Map<string, number>();
  for (let i = 0; i < 300; i++) {
    const e = pool.pick('round-robin', limits(), null) as Endpoint;
    counts.set(e.instanceId, (counts.get(e.instanceId) ?? 0) + 1);
  }
  t.same([...counts.values()], [100, 100, 100]);
});

t.test('least-connection prefers the endpoint with fewest requests in flight', async (t) => {
  const pool = poolOf(3);
  pool.endpoints[0].backend.inFlight = 5;
  pool.endpoints[1].backend.inFlight = 1;
  pool.endpoints[2].backend.inFlight = 3;
  for (let i = 0; i < 10; i++) t.equal((pool.pick('least-connection', limits(), null) as Endpoint).instanceId, 'i-1');
});

t.test('a failed endpoint is skipped during its cool-down unless all have failed', async (t) => {
  const pool = poolOf(2);
  pool.endpoints[0].backend.failedAt = 1_000_000 - 1000;
  for (let i = 0; i < 6; i++) t.equal((pool.pick('round-robin', limits(), null) as Endpoint).instanceId, 'i-1');
  // After the cool-down it is back in rotation.
  const later = new Set<string>();
  for (let i = 0; i < 4; i++) later.add((pool.pick('round-robin', limits({ now: 1_000_000 + 30_000 }), null) as Endpoint).instanceId);
  t.same([...later].sort(), ['i-0', 'i-1']);
  pool.endpoints[1].backend.failedAt = 1_000_000 - 500;
  t.equal((pool.pick('round-robin', limits(), null) as Endpoint).instanceId, 'i-0', 'all failed: the one that failed longest ago');
});

t.test('excluded backends are never picked; full ones give OVERLOADED', async (t) => {
  const pool = poolOf(2);
  const first = pool.endpoints[0].backend;
  t.equal((pool.pick('round-robin', limits(), [first]) as Endpoint).backend, pool.endpoints[1].backend);
  t.equal(pool.pick('round-robin', limits(), [first, pool.endpoints[1].backend]), undefined);
  pool.endpoints[1].backend.inFlight = 2;
  t.equal(pool.pick('round-robin', limits({ maxConnsPerBackend: 2 }), [first]), OVERLOADED);
  t.equal(new EndpointPool('x', '').pick('round-robin', limits(), null), undefined);
});

t.test('instances are found by app index and by instance id', async (t) => {
  const pool = poolOf(3);
  t.equal(pool.findInstance('app', '2')?.instanceId, 'i-2');
  t.equal(pool.findInstance('other', '2'), undefined);
  t.equal(pool.findInstanceId('i-1')?.instanceIndex, '1');
});

t.test('endpoint header lines carry the CF ids and cannot be injected into', async (t) => {
  const e = new Endpoint(new Backend('127.0.0.1', 1), 'app\r\nx-evil: 1', 'inst', '0', undefined, 1, 0);
  t.equal(e.headerLines, 'x-cf-applicationid: appx-evil: 1\r\nx-cf-instanceindex: 0\r\nx-cf-instanceid: inst\r\n');
  t.equal(parseLbAlgorithm('least-connection'), 'least-connection');
  t.equal(parseLbAlgorithm('random'), undefined);
});

t.test('session affinity counts the endpoints that asked for it', async (t) => {
  const pool = poolOf(2);
  const [a, b] = pool.endpoints;
  pool.setAffinity(a, true);
  pool.setAffinity(a, true);
  pool.setAffinity(b, true);
  t.equal(pool.sessionAffinity, true);
  pool.setAffinity(a, false);
  t.equal(pool.sessionAffinity, true, 'b still asks');
  pool.remove(b.backend.key, 0);
  t.equal(pool.sessionAffinity, false, 'nobody asks once b left, though a asked twice');
  pool.add(b);
  t.equal(pool.sessionAffinity, true, 'an endpoint added with it counts');
});
