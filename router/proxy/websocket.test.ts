import t from 'tap';
import {
  acceptKey,
  checkUpgradeResponse,
  decodeChunked,
  headerValue,
  parseResponseHead,
  parseSubprotocols,
  relayedClose,
  WebSocketStats,
  webSocketVarz,
} from './websocket';

t.test('parseSubprotocols: tokens, duplicates dropped, malformed refused', async (t) => {
  t.same(parseSubprotocols(''), []);
  t.same(parseSubprotocols('  '), []);
  t.same(parseSubprotocols('chat'), ['chat']);
  t.same(parseSubprotocols('chat.v1, chat.v2,chat.v1'), ['chat.v1', 'chat.v2']);
  t.equal(parseSubprotocols('chat, '), undefined, 'empty element');
  t.equal(parseSubprotocols('a b'), undefined, 'space inside a token');
  t.equal(parseSubprotocols('a;b'), undefined, 'separator inside a token');
});

t.test('relayedClose: codes pass, 1005 becomes a close without code, 1006 no close frame', async (t) => {
  t.equal(relayedClose(1000), 1000);
  t.equal(relayedClose(1001), 1001);
  t.equal(relayedClose(4321), 4321);
  t.equal(relayedClose(1005), undefined);
  t.equal(relayedClose(0), undefined, 'uWS reports an end() without code as 0');
  t.equal(relayedClose(1006), null);
});

t.test('acceptKey: the RFC 6455 example', async (t) => {
  t.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
});

t.test('parseResponseHead', async (t) => {
  t.same(parseResponseHead('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-A:  b  '), {
    status: 101,
    reason: 'Switching Protocols',
    headers: ['Upgrade', 'websocket', 'X-A', 'b'],
  });
  t.same(parseResponseHead('HTTP/1.0 403'), { status: 403, reason: '', headers: [] });
  t.equal(parseResponseHead('HTTP/2 200 OK'), undefined);
  t.equal(parseResponseHead('HTTP/1.1 20 OK'), undefined);
  t.equal(parseResponseHead('HTTP/1.1 200 OK\r\nno colon'), undefined);
  t.equal(parseResponseHead('HTTP/1.1 200 OK\r\nbad name: x'), undefined);
  t.equal(parseResponseHead('HTTP/1.1 200 OK\r\n: empty name'), undefined);
});

t.test('headerValue: case-insensitive, repeated headers joined', async (t) => {
  const h = ['Set-Cookie', 'a=1', 'X-One', 'v', 'set-cookie', 'b=2'];
  t.equal(headerValue(h, 'x-one'), 'v');
  t.equal(headerValue(h, 'set-cookie'), 'a=1, b=2');
  t.equal(headerValue(h, 'missing'), undefined);
});

t.test('decodeChunked: complete, partial, trailers, invalid', async (t) => {
  t.same(decodeChunked(Buffer.from('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n')), Buffer.from('hello world'));
  t.same(decodeChunked(Buffer.from('5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n')), Buffer.from('hello'), 'extensions and trailers');
  t.same(decodeChunked(Buffer.from('0\r\n\r\n')), Buffer.alloc(0), 'empty body');
  t.equal(decodeChunked(Buffer.from('5\r\nhel')), null, 'partial chunk');
  t.equal(decodeChunked(Buffer.from('5\r\nhello\r\n0\r\n')), null, 'last chunk without the final CRLF');
  t.equal(decodeChunked(Buffer.from('')), null);
  t.equal(decodeChunked(Buffer.from('zz\r\n')), undefined, 'not hex');
  t.equal(decodeChunked(Buffer.from('5\r\nhelloXX0\r\n\r\n')), undefined, 'no CRLF after the data');
  t.equal(decodeChunked(Buffer.from('1'.repeat(2000))), undefined, 'a size line that never ends');
});

t.test('checkUpgradeResponse', async (t) => {
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const good = ['Upgrade', 'WebSocket', 'Connection', 'keep-alive, Upgrade', 'Sec-WebSocket-Accept', acceptKey(key)];
  t.equal(checkUpgradeResponse(good, key, []), undefined, 'valid, no subprotocol');
  t.equal(checkUpgradeResponse([...good, 'Sec-WebSocket-Protocol', 'b'], key, ['a', 'b']), undefined, 'an offered subprotocol');
  t.equal(checkUpgradeResponse(good, key, ['a', 'b']), undefined, 'no subprotocol chosen is fine (as for browsers)');
  t.match(checkUpgradeResponse([...good, 'Sec-WebSocket-Protocol', 'c'], key, ['a', 'b']), /not offered/);
  t.match(checkUpgradeResponse(good, 'AAAAAAAAAAAAAAAAAAAAAA==', []), /Accept/);
  t.match(checkUpgradeResponse(['Upgrade', 'websocket', 'Sec-WebSocket-Accept', acceptKey(key)], key, []), /Connection/);
  t.match(checkUpgradeResponse(['Connection', 'upgrade', 'Sec-WebSocket-Accept', acceptKey(key)], key, []), /Upgrade/);
  t.match(checkUpgradeResponse([...good, 'Sec-WebSocket-Extensions', 'permessage-deflate'], key, []), /extension/);
});

t.test('WebSocketStats: snake_case figures for /varz, added up over threads', async (t) => {
  const s = new WebSocketStats();
  s.open = 2;
  s.total = 5;
  s.bytesIn = 10;
  s.bytesOut = 20;
  t.same(webSocketVarz(s), { open: 2, total: 5, bytes_in: 10, bytes_out: 20, upgrades_failed: 0, idle_timeouts: 0, overflow_closes: 0 });
  const other = new WebSocketStats();
  other.open = 1;
  other.bytesIn = 5;
  s.add(other.figures());
  t.same(webSocketVarz(s), { open: 3, total: 5, bytes_in: 15, bytes_out: 20, upgrades_failed: 0, idle_timeouts: 0, overflow_closes: 0 });
  t.notOk(other.figures() instanceof WebSocketStats, 'a plain object, for postMessage');
});
