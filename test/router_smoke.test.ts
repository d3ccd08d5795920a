import t from 'tap';
import { startNats } from './harness';
import { busClient, get, registerRoute, startBackend, startRouter } from './router_harness';

t.test('a registered app answers through the router with the router headers', async (t) => {
  const nats = await startNats(t);
  const router = await startRouter(t, nats);
  const nc = await busClient(t, nats);
  const backend = await startBackend(t, (req, res) => res.end(JSON.stringify(req.headers)));
  await registerRoute(nc, router, { port: backend.port, uris: ['smoke.localhost'], app: 'app-1', private_instance_id: 'i-1', private_instance_index: '0' });
  const reply = await get({ port: router.port, host: 'smoke.localhost:8080', path: '/x?y=1' });
  t.equal(reply.status, 200);
  const seen = JSON.parse(reply.body.toString());
  t.equal(seen.host, 'smoke.localhost:8080', 'Host passed unchanged');
  t.equal(seen['x-forwarded-for'], '127.0.0.1');
  t.equal(seen['x-cf-applicationid'], 'app-1');
  t.equal(backend.requests[0].url, '/x?y=1');
  t.equal(await router.stop(), 0, 'router exits 0 on SIGTERM');
});
