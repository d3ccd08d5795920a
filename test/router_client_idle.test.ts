// Client-side timeouts of the router's app port (uWebSockets.js closes idle
// keep-alive connections after 10 s; README, known limits), and the request
// head limit.
import * as net from 'node:net';
import t from 'tap';
import { sleep, startNats } from './harness';
import { busClient, registerRoute, startBackend, startRouter } from './router_harness';

function rawExchange(port: number, request: string): Promise<{ socket: net.Socket; firstReply: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(request);
      const firstReply = new Promise<string>((res) => {
        let data = '';
        socket.on('data', (d) => {
          data += d.toString('latin1');
          if (data.includes('\r\n\r\n')) res(data);
        });
        socket.on('close', () => res(data));
      });
      resolve({ socket, firstReply });
    });
    socket.on('error', reject);
  });
}

t.test('the app port', async (t) => {
  const nats = await startNats(t);
  // Heads are kept under one loopback segment (64 KiB): uWebSockets.js 20.30
  // drops a head over ~4 KB that arrives split across reads (README, known
  // limits), so only single-segment heads give a deterministic answer.
  const router = await startRouter(t, nats, { args: ['--max-header-kb', '32'] });
  const nc = await busClient(t, nats);
  // Node's own 16 KB head limit would answer 431 before the router's is tested.
  const backend = await startBackend(t, (_req, res) => res.end('ok'), undefined, { maxHeaderSize: 256 * 1024 });
  await registerRoute(nc, router, { port: backend.port, uris: ['idle.localhost'] });

  t.test('an idle keep-alive client connection is closed after about 10 s', async (t) => {
    const { socket, firstReply } = await rawExchange(router.port, 'GET / HTTP/1.1\r\nHost: idle.localhost\r\n\r\n');
    t.teardown(() => socket.destroy());
    t.match(await firstReply, /^HTTP\/1\.1 200 /, 'first request answered');
    const idleSince = Date.now();
    const closedAfter = await new Promise<number>((resolve) => {
      socket.once('close', () => resolve(Date.now() - idleSince));
      setTimeout(() => resolve(-1), 20_000).unref();
    });
    t.ok(closedAfter >= 8_000 && closedAfter <= 16_000, `closed after ${closedAfter} ms of idleness`);
  });

  t.test('a connection in use is not cut by the idle timeout', async (t) => {
    const { socket, firstReply } = await rawExchange(router.port, 'GET / HTTP/1.1\r\nHost: idle.localhost\r\n\r\n');
    t.teardown(() => socket.destroy());
    await firstReply;
    let closed = false;
    socket.on('close', () => (closed = true));
    let answered = 0;
    socket.on('data', () => answered++);
    for (let i = 0; i < 6; i++) {
      await sleep(2_500);
      socket.write('GET / HTTP/1.1\r\nHost: idle.localhost\r\n\r\n');
    }
    await sleep(300);
    t.notOk(closed, 'still open after 15 s of requests every 2.5 s');
    t.equal(answered, 6, 'every request answered');
  });

  t.test('a request head over --max-header-kb (32 here) is refused and never forwarded', async (t) => {
    const before = backend.requests.length;
    const big = 'x'.repeat(40 * 1024);
    // 431 when the head arrives in one read. A loaded machine can split a
    // 40 KB write, and uWebSockets.js 20.30 drops heads over ~4 KB split
    // across reads without an answer (README, known limits): such a try is
    // repeated; the app must see none of them.
    const replies: string[] = [];
    for (let i = 0; i < 3 && !replies.some((r) => r.startsWith('HTTP/1.1 431 ')); i++) {
      const { socket, firstReply } = await rawExchange(router.port, `GET / HTTP/1.1\r\nHost: idle.localhost\r\nX-Big: ${big}\r\n\r\n`);
      t.teardown(() => socket.destroy());
      replies.push(await firstReply);
    }
    t.ok(replies.some((r) => r.startsWith('HTTP/1.1 431 ')), `431 Request Header Fields Too Large (${replies.map((r) => JSON.stringify(r.slice(0, 30))).join(', ')})`);
    t.ok(replies.every((r) => r === '' || r.startsWith('HTTP/1.1 431 ')), 'every try refused');
    t.equal(backend.requests.length, before, 'the app saw nothing');
    const fits = 'y'.repeat(24 * 1024);
    let accepted = '';
    for (let i = 0; i < 3 && !accepted.startsWith('HTTP/1.1 200 '); i++) {
      const ok = await rawExchange(router.port, `GET / HTTP/1.1\r\nHost: idle.localhost\r\nX-Big: ${fits}\r\n\r\n`);
      t.teardown(() => ok.socket.destroy());
      accepted = await ok.firstReply;
    }
    t.match(accepted, /^HTTP\/1\.1 200 /, 'a 24 KB header is accepted');
  });
});
