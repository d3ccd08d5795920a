import { createServer } from 'node:net';
import t from 'tap';
import { bindProbe, PortAllocator } from './ports';

t.test('hands out each port once, skipping busy ones, wrapping around', async (t) => {
  const busy = new Set([11]);
  const ports = new PortAllocator({ first: 10, last: 13 }, async (p) => !busy.has(p), 10);
  t.equal(await ports.allocate(), 10);
  t.equal(await ports.allocate(), 12, 'busy 11 skipped');
  t.equal(await ports.allocate(), 13);
  t.equal(await ports.allocate(), undefined, 'range exhausted');
  ports.release(12);
  busy.clear();
  t.equal(await ports.allocate(), 11, 'continues after the last handed out');
  t.equal(await ports.allocate(), 12, 'released port comes back');
});

t.test('two allocators on one range start at different places', async (t) => {
  const starts = new Set<number | undefined>();
  for (let i = 0; i < 20; i++) starts.add(await new PortAllocator({ first: 61000, last: 61999 }, async () => true).allocate());
  t.ok(starts.size > 10, `random starting points (${starts.size} distinct of 20)`);
});

t.test('concurrent allocations never share a port', async (t) => {
  const ports = new PortAllocator({ first: 1, last: 50 }, () => new Promise((r) => setTimeout(() => r(true), 5)));
  const got = await Promise.all(Array.from({ length: 50 }, () => ports.allocate()));
  t.equal(new Set(got).size, 50);
  t.equal(await ports.allocate(), undefined);
});

t.test('bindProbe sees a listening socket', async (t) => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const probe = bindProbe('127.0.0.1');
  t.equal(await probe(port), false);
  await new Promise<void>((r) => server.close(() => r()));
  t.equal(await probe(port), true);
});
