import t from 'tap';
import { parseRouterOptions } from './options';

const secret = () => 'generated-secret';

t.test('defaults follow design.md and gorouter', async (t) => {
  const o = parseRouterOptions([], {}, secret);
  t.match(o, {
    port: 8080,
    statusPort: 8081,
    nats: 'nats://127.0.0.1:4222',
    startDelayMs: 1000,
    backendTimeoutMs: 900_000,
    connectTimeoutMs: 5000,
    staleThresholdMs: 120_000,
    maxHeaderBytes: 64 * 1024,
  });
  t.equal(o.lb, undefined, 'no --lb: the config store decides');
  t.equal(o.maxConnsPerBackend, undefined);
  t.equal(o.statusPassword, 'generated-secret');
  t.ok(o.statusCredentialsGenerated);
  t.ok(o.backendIdleTimeoutMs < 5000, 'idle pooled sockets close before a Node app (5 s) closes them');
});

t.test('flags, then environment', async (t) => {
  const o = parseRouterOptions(
    ['--port', '9000', '--lb', 'least-connection', '--status-password', 'pw'],
    { SKIFF_ROUTER_PORT: '9999', SKIFF_ROUTER_STATUS_PORT: '9001', NATS_URL: 'nats://nats:4222', SKIFF_ROUTER_START_DELAY: '0' },
    secret,
  );
  t.equal(o.port, 9000);
  t.equal(o.statusPort, 9001);
  t.equal(o.nats, 'nats://nats:4222');
  t.equal(o.lb, 'least-connection');
  t.equal(o.startDelayMs, 0);
  t.equal(o.statusPassword, 'pw');
  t.notOk(o.statusCredentialsGenerated);
});

t.test('bad values are refused with the flag named', async (t) => {
  t.throws(() => parseRouterOptions(['--lb', 'random'], {}, secret), { message: /--lb must be one of/ });
  t.throws(() => parseRouterOptions(['--max-conns-per-backend', '0'], {}, secret), { message: /at least 1/ });
  t.throws(() => parseRouterOptions(['extra'], {}, secret), { message: /unexpected argument/ });
});
