// AppLink against raw frames written by a real loopback peer (the "app").
import * as net from 'node:net';
import t from 'tap';
import { AppLink, isSendableCloseCode, LINK_OPEN, type AppLinkEvents } from './app_link';

interface Seen {
  messages: Array<{ data: string; binary: boolean }>;
  raw: Buffer[];
  pings: string[];
  closes: Array<{ code: number; reason: string }>;
  errors: string[];
}

function frame(opcode: number, payload: Buffer, fin = true, extra = 0): Buffer {
  const head = payload.length < 126 ? Buffer.from([(fin ? 0x80 : 0) | extra | opcode, payload.length]) : Buffer.from([(fin ? 0x80 : 0) | opcode, 126, payload.length >> 8, payload.length & 255]);
  return Buffer.concat([head, payload]);
}

/** Unmasks what the link sent (it must mask every frame). */
function readFrames(bytes: Buffer): Array<{ opcode: number; payload: Buffer; masked: boolean }> {
  const out = [];
  let off = 0;
  while (off + 2 <= bytes.length) {
    const opcode = bytes[off]! & 0x0f;
    const masked = (bytes[off + 1]! & 0x80) !== 0;
    let length = bytes[off + 1]! & 0x7f;
    let at = off + 2;
    if (length === 126) {
      length = bytes.readUInt16BE(at);
      at += 2;
    }
    const mask = bytes.subarray(at, at + 4);
    at += 4;
    const payload = Buffer.from(bytes.subarray(at, at + length));
    for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
    out.push({ opcode, payload, masked });
    off = at + length;
  }
  return out;
}

/** `viewReads`: the socket reads into a 16-byte buffer reused by every read, as the router's shared one is. */
async function pair(t: tap.Test, maxPayload = 1024 * 1024, viewReads = false) {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const appSide = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  let linkRef: AppLink | undefined;
  const readBuffer = Buffer.alloc(16);
  const port = (server.address() as net.AddressInfo).port;
  const socket = viewReads
    ? net.connect({
        port,
        host: '127.0.0.1',
        onread: {
          buffer: readBuffer,
          callback: (n: number, buf: Uint8Array) => {
            linkRef?.onRead(Buffer.from(buf.buffer, buf.byteOffset, n));
            return true;
          },
        },
      })
    : net.connect(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  const app = await appSide;
  t.teardown(() => {
    app.destroy();
    socket.destroy();
  });
  const received: Buffer[] = [];
  app.on('data', (chunk: Buffer) => received.push(chunk));
  const seen: Seen = { messages: [], raw: [], pings: [], closes: [], errors: [] };
  const events: AppLinkEvents = {
    onMessage: (_l, data, binary) => {
      seen.messages.push({ data: data.toString(), binary });
      seen.raw.push(Buffer.from(data));
    },
    onPing: (_l, data) => seen.pings.push(data.toString()),
    onClose: (_l, code, reason) => seen.closes.push({ code, reason: reason.toString() }),
    onError: (_l, error) => seen.errors.push(error.message),
  };
  let counter = 1;
  socket.pause();
  const link = new AppLink(
    socket,
    Buffer.alloc(0),
    events,
    maxPayload,
    (into, at) => {
      into.writeUInt32BE(counter++ * 0x01010101, at);
    },
    viewReads,
  );
  linkRef = link;
  link.start();
  return { app, link, seen, sent: () => readFrames(Buffer.concat(received)) };
}

const settle = (ms = 100) => new Promise((resolve) => setTimeout(resolve, ms));

for (const viewReads of [false, true]) t.test(`messages both ways, masked on the way to the app${viewReads ? ' (reads as views of a reused 16-byte buffer)' : ''}`, async (t) => {
  const { app, link, seen, sent } = await pair(t, 1024 * 1024, viewReads);
  link.send(Buffer.from('hello'), false);
  link.send(Buffer.alloc(300, 7), true);
  app.write(Buffer.concat([frame(1, Buffer.from('hi')), frame(2, Buffer.from([1, 2, 3]))]));
  // A fragmented message, split across writes in the middle of a header.
  const fragmented = Buffer.concat([frame(1, Buffer.from('frag'), false), frame(0, Buffer.from('men'), false), frame(0, Buffer.from('ted'))]);
  app.write(fragmented.subarray(0, 7));
  await settle(30);
  app.write(fragmented.subarray(7));
  app.write(frame(9, Buffer.from('ping!')));
  await settle();
  const out = sent();
  t.same(out.map((f) => [f.opcode, f.masked]), [[1, true], [2, true]], 'text and binary frames, masked');
  t.equal(out[0]!.payload.toString(), 'hello');
  t.same(out[1]!.payload, Buffer.alloc(300, 7), '16-bit length');
  t.same(seen.messages, [
    { data: 'hi', binary: false },
    { data: '\u0001\u0002\u0003', binary: true },
    { data: 'fragmented', binary: false },
  ]);
  t.same(seen.pings, ['ping!'], 'pings go to the owner, not answered here');
  const big = Buffer.alloc(1000);
  for (let i = 0; i < big.length; i++) big[i] = i & 255;
  app.write(Buffer.concat([frame(2, big.subarray(0, 400), false), frame(0, big.subarray(400))]));
  await settle();
  t.equal(seen.messages.at(-1)!.binary, true);
  t.same(seen.raw.at(-1), big, 'a fragmented 1000-byte message arrives intact across many small reads');
  t.equal(link.readyState, LINK_OPEN);
});

t.test('the app closes: the code is echoed, the close reported once', async (t) => {
  const { app, seen, sent } = await pair(t);
  const payload = Buffer.concat([Buffer.from([0x0f, 0xa0]), Buffer.from('bye')]); // 4000
  app.write(frame(8, payload));
  await settle();
  app.end();
  await settle();
  t.same(seen.closes, [{ code: 4000, reason: 'bye' }]);
  const out = sent();
  t.equal(out.length, 1);
  t.equal(out[0]!.opcode, 8);
  t.equal(out[0]!.payload.readUInt16BE(0), 4000, 'code echoed');
});

t.test('the router closes, or the connection is lost', async (t) => {
  const a = await pair(t);
  a.link.close(1001, 'going away');
  a.link.close(1000, 'twice');
  await settle();
  const out = a.sent();
  t.equal(out.length, 1, 'one close frame');
  t.equal(out[0]!.payload.readUInt16BE(0), 1001);
  t.equal(out[0]!.payload.subarray(2).toString(), 'going away');
  a.app.write(frame(8, out[0]!.payload));
  await settle();
  t.same(a.seen.closes, [{ code: 1001, reason: 'going away' }]);

  const b = await pair(t);
  b.link.close(1006, 'not sendable');
  await settle();
  t.equal(b.sent()[0]!.payload.length, 0, 'a code no endpoint may send goes as a close without one');

  const c = await pair(t);
  c.app.destroy();
  await settle();
  t.same(c.seen.closes, [{ code: 1006, reason: '' }], 'lost connection: 1006');
});

t.test('protocol errors from the app close with the right code', async (t) => {
  const cases: Array<[string, Buffer, number]> = [
    ['masked frame', Buffer.from([0x81, 0x82, 1, 2, 3, 4, 5, 6]), 1002],
    ['RSV bit', frame(1, Buffer.from('x'), true, 0x40), 1002],
    ['long ping', frame(9, Buffer.alloc(126)), 1002],
    ['continuation without a message', frame(0, Buffer.from('x')), 1002],
    ['invalid UTF-8 text', frame(1, Buffer.from([0xff, 0xfe])), 1007],
    ['over the payload limit', frame(2, Buffer.alloc(200)), 1009],
    ['unknown opcode', frame(3, Buffer.from('x')), 1002],
  ];
  for (const [name, bytes, code] of cases) {
    const { app, seen, sent } = await pair(t, 100);
    app.write(bytes);
    await settle();
    const out = sent();
    t.equal(out[0]?.opcode, 8, `${name}: a close frame`);
    t.equal(out[0]?.payload.readUInt16BE(0), code, `${name}: ${code}`);
    t.equal(seen.errors.length, 1, `${name}: reported`);
    t.same(seen.messages, [], `${name}: nothing delivered`);
  }
});

t.test('sendable close codes', async (t) => {
  for (const code of [1000, 1001, 1003, 1007, 1014, 3000, 4999]) t.ok(isSendableCloseCode(code), String(code));
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 2000, 5000]) t.notOk(isSendableCloseCode(code), String(code));
});
