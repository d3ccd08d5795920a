import t from 'tap';
import { parseSimpleResponse } from './response_head';

const MAX = 80 * 1024;
const parse = (raw: string, headOnly = false) => {
  const buf = Buffer.from(raw, 'latin1');
  return parseSimpleResponse(buf, 0, buf.length, MAX, headOnly);
};

t.test('a whole response with a Content-Length body is taken without llhttp', async (t) => {
  const r = parse('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Thing:  spaced value \t\r\n\r\nhello');
  t.ok(r);
  t.equal(r!.status, 200);
  t.equal(r!.reason, 'OK');
  t.same(r!.headers, ['Content-Type', 'text/plain', 'Content-Length', '5', 'X-Thing', 'spaced value']);
  t.equal(r!.keepAlive, true);
  t.equal(r!.bodyLength, 5);
  t.equal(Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Thing:  spaced value \t\r\n\r\n').length, r!.bodyStart);
});

t.test('keep-alive, reasons and bodiless statuses', async (t) => {
  t.equal(parse('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')!.keepAlive, false);
  t.equal(parse('HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n')!.keepAlive, false);
  t.equal(parse('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n')!.keepAlive, true);
  t.equal(parse('HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n')!.reason, '', 'no reason phrase');
  t.equal(parse('HTTP/1.1 418 I\'m a teapot\r\nContent-Length: 0\r\n\r\n')!.reason, "I'm a teapot");
  t.equal(parse('HTTP/1.1 204 No Content\r\n\r\n')!.bodyLength, 0, '204 has no body');
  t.equal(parse('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n')!.bodyLength, 0, '304 keeps its length header, sends no body');
  const head = parse('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n', true);
  t.equal(head!.bodyLength, 0, 'HEAD: no body whatever the length says');
  t.same(head!.headers, ['Content-Length', '1000']);
});

t.test('anything unusual is left to llhttp', async (t) => {
  const cases: Record<string, string> = {
    'head not complete': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n',
    chunked: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'close-delimited': 'HTTP/1.1 200 OK\r\n\r\nbody',
    'HTTP/1.0': 'HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n',
    '100 Continue': 'HTTP/1.1 100 Continue\r\n\r\n',
    '101': 'HTTP/1.1 101 Switching Protocols\r\n\r\n',
    'bad status': 'HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n',
    'not HTTP': 'HTXP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
    'no space after status': 'HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n',
    'two lengths': 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n',
    'signed length': 'HTTP/1.1 200 OK\r\nContent-Length: +0\r\n\r\n',
    'empty length': 'HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n',
    'obs-fold': 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n',
    'space before colon': 'HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 0\r\n\r\n',
    'no colon': 'HTTP/1.1 200 OK\r\nX-A a\r\nContent-Length: 0\r\n\r\n',
    'bare LF in a value': 'HTTP/1.1 200 OK\r\nX-A: a\nb\r\nContent-Length: 0\r\n\r\n',
    'bare CR in a value': 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n',
    'NUL in a value': 'HTTP/1.1 200 OK\r\nX-A: a\u0000b\r\nContent-Length: 0\r\n\r\n',
    'control byte in the reason': 'HTTP/1.1 200 O\u0001K\r\nContent-Length: 0\r\n\r\n',
  };
  for (const [name, raw] of Object.entries(cases)) t.equal(parse(raw), null, name);
});

t.test('a body that continues in later reads: what this read holds is counted', async (t) => {
  const r = parse('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel');
  t.ok(r);
  t.equal(r!.bodyLength, 5);
  t.equal(r!.bodyAvailable, 3);
  const none = parse('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n');
  t.equal(none!.bodyAvailable, 0, 'head alone');
});

t.test('a head over the limit is left to llhttp (which refuses it)', async (t) => {
  const raw = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(100)}\r\nContent-Length: 0\r\n\r\n`;
  const buf = Buffer.from(raw);
  t.ok(parseSimpleResponse(buf, 0, buf.length, 1024, false));
  t.equal(parseSimpleResponse(buf, 0, buf.length, 64, false), null);
});

t.test('only the first `length` bytes of the read buffer count', async (t) => {
  const buf = Buffer.alloc(1024, 'z');
  const n = buf.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi', 'latin1');
  const r = parseSimpleResponse(buf, 0, n, MAX, false);
  t.ok(r);
  t.equal(buf.subarray(r!.bodyStart, r!.bodyStart + r!.bodyLength).toString(), 'hi');
});

t.test('pipelined responses in one read: each is parsed from where the last one ended', async (t) => {
  const raw = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnopeHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart';
  const buf = Buffer.from(raw, 'latin1');
  const first = parseSimpleResponse(buf, 0, buf.length, MAX, false)!;
  t.equal(first.bodyAvailable, 2, 'the body ends at its length, not at the end of the read');
  t.equal(buf.toString('latin1', first.bodyStart, first.bodyStart + first.bodyAvailable), 'hi');
  const second = parseSimpleResponse(buf, first.bodyStart + 2, buf.length, MAX, false)!;
  t.equal(second.status, 404);
  t.equal(buf.toString('latin1', second.bodyStart, second.bodyStart + second.bodyAvailable), 'nope');
  const third = parseSimpleResponse(buf, second.bodyStart + 4, buf.length, MAX, false)!;
  t.equal(third.bodyLength, 9);
  t.equal(third.bodyAvailable, 4, 'the last body continues in the next read');
  const headOnly = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx', 'latin1');
  const h = parseSimpleResponse(headOnly, 0, headOnly.length, MAX, true)!;
  t.equal(h.bodyAvailable, 0, 'HEAD: the next response starts right after the head');
  t.equal(parseSimpleResponse(headOnly, h.bodyStart, headOnly.length, MAX, false)!.bodyAvailable, 1);
  const limited = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' + `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(100)}\r\nContent-Length: 0\r\n\r\n`, 'latin1');
  t.equal(parseSimpleResponse(limited, 38, limited.length, 64, false), null, 'the head limit counts from the start of each response');
});
