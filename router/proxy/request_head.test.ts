import t from 'tap';
import {
  forwardedFor,
  forwardedProto,
  BodyFraming,
  canonicalMethod,
  isIdempotent,
  isPipelinable,
  parseAppInstance,
  RequestHeadScan,
  requestBodyFraming,
} from './request_head';
import { connectionListedHeaders, isHopByHop } from './hop_by_hop';

function scanOf(headers: [string, string][]): RequestHeadScan {
  const scan = new RequestHeadScan();
  scan.reset();
  for (const [name, value] of headers) scan.visit(name, value);
  return scan;
}

t.test('forwarded lines keep end-to-end headers, drop hop-by-hop and router-owned ones', async (t) => {
  const scan = scanOf([
    ['host', 'a.localhost:8080'],
    ['accept', '*/*'],
    ['connection', 'keep-alive, X-Hop'],
    ['x-hop', 'secret'],
    ['keep-alive', 'timeout=5'],
    ['upgrade', 'websocket'],
    ['te', 'trailers'],
    ['expect', '100-continue'],
    ['x-vcap-request-id', 'forged'],
    ['x-cf-instanceid', 'forged'],
    ['x-forwarded-for', '1.2.3.4'],
    ['x-cf-app-instance', 'app:1'],
  ]);
  t.equal(scan.headerLines(), 'host: a.localhost:8080\r\naccept: */*\r\n');
  t.equal(scan.host, 'a.localhost:8080');
  t.equal(scan.forwardedFor, '1.2.3.4');
  t.equal(scan.appInstance, 'app:1');
});

t.test('reset forgets the previous request', async (t) => {
  const scan = scanOf([['host', 'a'], ['x-forwarded-for', '1.1.1.1'], ['content-length', '3']]);
  scan.reset();
  scan.visit('host', 'b');
  t.equal(scan.headerLines(), 'host: b\r\n');
  t.equal(scan.forwardedFor, '');
  t.equal(requestBodyFraming(scan), BodyFraming.None);
});

t.test('body framing refuses what request smuggling relies on', async (t) => {
  t.equal(requestBodyFraming(scanOf([])), BodyFraming.None);
  t.equal(requestBodyFraming(scanOf([['content-length', '10']])), BodyFraming.Length);
  t.equal(requestBodyFraming(scanOf([['content-length', '10'], ['content-length', '10']])), BodyFraming.Invalid, 'repeated, even with one value');
  t.equal(requestBodyFraming(scanOf([['content-length', '10, 10']])), BodyFraming.Invalid, 'a list of lengths');
  t.equal(requestBodyFraming(scanOf([['content-length', '10'], ['content-length', '11']])), BodyFraming.Invalid);
  t.equal(requestBodyFraming(scanOf([['content-length', '-1']])), BodyFraming.Invalid);
  t.equal(requestBodyFraming(scanOf([['content-length', '1e3']])), BodyFraming.Invalid);
  t.equal(requestBodyFraming(scanOf([['transfer-encoding', 'chunked']])), BodyFraming.Chunked);
  t.equal(requestBodyFraming(scanOf([['transfer-encoding', 'Chunked ']])), BodyFraming.Chunked);
  t.equal(requestBodyFraming(scanOf([['transfer-encoding', 'gzip']])), BodyFraming.Invalid);
  t.equal(requestBodyFraming(scanOf([['transfer-encoding', 'gzip, chunked']])), BodyFraming.Invalid);
  t.equal(requestBodyFraming(scanOf([['transfer-encoding', 'chunked'], ['content-length', '5']])), BodyFraming.Invalid);
});

t.test('X-Cf-App-Instance must be <app-id>:<index>', async (t) => {
  t.same(parseAppInstance('app-1:2'), { appId: 'app-1', index: '2' });
  for (const bad of ['app-1', ':1', 'app-1:', 'a:b:c', 'app:x', ''])
    t.equal(parseAppInstance(bad), undefined, JSON.stringify(bad));
});

t.test('small helpers', async (t) => {
  t.equal(forwardedFor('', '127.0.0.1', false), '127.0.0.1');
  t.equal(forwardedFor('1.2.3.4', '127.0.0.1', false), '1.2.3.4, 127.0.0.1');
  t.equal(forwardedFor('1.2.3.4', '127.0.0.1', true), '127.0.0.1', 'sanitize replaces');
  t.equal(forwardedProto('https', false), 'https');
  t.equal(forwardedProto('https', true), 'http');
  t.equal(forwardedProto('', false), 'http');
  t.equal(canonicalMethod('get'), 'GET');
  t.equal(canonicalMethod('purge'), 'PURGE');
  t.ok(isIdempotent('PUT'));
  t.notOk(isIdempotent('POST'));
  t.notOk(isIdempotent('PATCH'));
  t.ok(isHopByHop('transfer-encoding'));
  t.notOk(isHopByHop('content-type'));
  t.same(connectionListedHeaders('close, X-Foo,  keep-alive ,x-bar'), ['x-foo', 'x-bar']);
});

t.test('what may be pipelined: safe methods without a body, but no event stream and no Engine.IO poll', async (t) => {
  t.ok(isPipelinable('GET', false, undefined, ''));
  t.ok(isPipelinable('HEAD', false, 'a=1', 'text/html'));
  t.ok(isPipelinable('OPTIONS', false, undefined, '*/*'));
  t.notOk(isPipelinable('GET', true, undefined, ''), 'a GET with a body');
  for (const m of ['POST', 'PUT', 'DELETE', 'PATCH', 'TRACE', 'CONNECT']) t.notOk(isPipelinable(m, false, undefined, ''), m);
  t.notOk(isPipelinable('GET', false, 'EIO=4&transport=polling&t=abc&sid=x', ''), 'Engine.IO long-polling');
  t.ok(isPipelinable('GET', false, 'EIO=4&transport=websocket', ''), 'Engine.IO upgrade request is not a poll');
  t.notOk(isPipelinable('GET', false, undefined, 'text/event-stream'), 'an event stream');
  t.notOk(isPipelinable('GET', false, undefined, 'text/html, text/event-stream;q=0.9'), 'an event stream among others');
  const scan = new RequestHeadScan();
  scan.reset();
  scan.visit('accept', 'text/event-stream');
  t.equal(scan.accept, 'text/event-stream', 'the scan reads Accept');
  t.match(scan.headerLines(), /accept: text\/event-stream\r\n/, 'and still forwards it');
});
