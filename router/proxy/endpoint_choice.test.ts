import t from 'tap';
import { Registry } from '../registry/registry';
import { Endpoint } from '../route/pool';
import { RouterStats } from '../varz/varz';
import { EndpointChooser } from './endpoint_choice';
import { RouterErrorKind } from './router_error';

function setup() {
  const registry = new Registry({ defaultStaleThresholdMs: 120_000, emptyPoolTtlMs: 120_000 });
  for (let i = 0; i < 3; i++)
    registry.register({ host: 'h', port: i + 1, uris: ['a.localhost'], app: 'app', private_instance_id: `i-${i}`, private_instance_index: String(i) }, Date.now());
  const settings = { lbAlgorithm: 'round-robin' as const, coolDownMs: 30_000, maxConnsPerBackend: 2, sessionCookies: ['JSESSIONID'] };
  const stats = new RouterStats();
  return { registry, settings, stats, chooser: new EndpointChooser(registry, settings, stats) };
}

t.test('pinned beats sticky beats the balancer', async (t) => {
  const { chooser } = setup();
  const pinned = chooser.choose('A.localhost:8080', '/', 'app:2', 'JSESSIONID=x; __VCAP_ID__=i-1') as Endpoint;
  t.equal(pinned.instanceId, 'i-2');
  t.equal(chooser.pool?.host, 'a.localhost');
  for (let i = 0; i < 5; i++) t.equal((chooser.choose('a.localhost', '/', '', 'JSESSIONID=x; __VCAP_ID__=i-1') as Endpoint).instanceId, 'i-1');
  const spread = new Set<string>();
  for (let i = 0; i < 6; i++) spread.add((chooser.choose('a.localhost', '/', '', '') as Endpoint).instanceId);
  t.equal(spread.size, 3);
});

t.test('errors name what the router answers', async (t) => {
  const { chooser, registry } = setup();
  t.equal(chooser.choose('', '/', '', ''), RouterErrorKind.EmptyHost);
  t.equal(chooser.choose('b.localhost', '/', '', ''), RouterErrorKind.UnknownRoute);
  t.equal(chooser.choose('a.localhost', '/', 'app', ''), RouterErrorKind.InvalidAppInstanceHeader);
  t.equal(chooser.choose('a.localhost', '/', 'app:7', ''), RouterErrorKind.UnknownInstance);
  registry.unregister({ host: 'h', port: 1, uris: ['a.localhost'] }, Date.now());
  registry.unregister({ host: 'h', port: 2, uris: ['a.localhost'] }, Date.now());
  registry.unregister({ host: 'h', port: 3, uris: ['a.localhost'] }, Date.now());
  t.equal(chooser.choose('a.localhost', '/', '', ''), RouterErrorKind.NoEndpoints);
});

t.test('a full sticky instance falls back; all full is a connection-limit refusal', async (t) => {
  const { chooser, stats } = setup();
  const first = chooser.choose('a.localhost', '/', '', '') as Endpoint;
  const pool = chooser.pool!;
  for (const e of pool.endpoints) e.backend.inFlight = 2;
  pool.endpoints[0].backend.inFlight = 0;
  t.equal((chooser.choose('a.localhost', '/', '', 'JSESSIONID=x; __VCAP_ID__=i-1') as Endpoint).instanceId, 'i-0', 'sticky instance full: another one');
  pool.endpoints[0].backend.inFlight = 2;
  t.equal(chooser.choose('a.localhost', '/', '', ''), RouterErrorKind.ConnectionLimit);
  t.equal(chooser.choose('a.localhost', '/', 'app:1', ''), RouterErrorKind.ConnectionLimit, 'a pinned instance has the limit too');
  t.equal(stats.connectionLimitRejections, 2);
  for (const e of pool.endpoints) e.backend.inFlight = 0;
  t.not(chooser.retry(pool, [first.backend])?.backend, first.backend, 'a retry never returns a tried backend');
});

t.test('session affinity: __VCAP_ID__ alone pins; `named` tells whether the cookie must be set', async (t) => {
  const { chooser, registry } = setup();
  for (let i = 0; i < 3; i++)
    registry.register({ host: 'h', port: i + 1, uris: ['a.localhost'], app: 'app', private_instance_id: `i-${i}`, private_instance_index: String(i), options: { session_affinity: true } }, Date.now());
  for (let i = 0; i < 5; i++) {
    t.equal((chooser.choose('a.localhost', '/', '', '__VCAP_ID__=i-2') as Endpoint).instanceId, 'i-2');
    t.equal(chooser.named?.instanceId, 'i-2');
  }
  chooser.choose('a.localhost', '/', '', '__VCAP_ID__=gone');
  t.equal(chooser.named, null, 'an instance no longer registered: none named, balanced');
  chooser.choose('a.localhost', '/', '', '');
  t.equal(chooser.named, null, 'no cookie: none named');
  const pool = chooser.pool!;
  pool.endpoints[2].backend.inFlight = 2;
  const elsewhere = chooser.choose('a.localhost', '/', '', '__VCAP_ID__=i-2') as Endpoint;
  t.not(elsewhere.instanceId, 'i-2', 'a full instance: another one');
  t.equal(chooser.named?.instanceId, 'i-2', 'still named, so the response from the other re-pins');
  pool.endpoints[2].backend.inFlight = 0;
  chooser.choose('a.localhost', '/', 'app:0', '__VCAP_ID__=i-2');
  t.equal(chooser.named?.instanceId, 'i-2', 'X-Cf-App-Instance wins over the cookie');
  chooser.choose('b.localhost', '/', '', '__VCAP_ID__=i-2');
  t.equal(chooser.named, null, 'reset for each request');
});

t.test('without affinity, __VCAP_ID__ alone does not pin and nothing is named', async (t) => {
  const { chooser } = setup();
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) {
    seen.add((chooser.choose('a.localhost', '/', '', '__VCAP_ID__=i-2') as Endpoint).instanceId);
    t.equal(chooser.named, null);
  }
  t.equal(seen.size, 3);
});
