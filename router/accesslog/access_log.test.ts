import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { silentLogger } from '../../bus/log';
import { AccessLog } from './access_log';
import { ACCESS_LOG_LINE, bareHost, formatAccessLogLine, quoted, type AccessLogRecord } from './format';
import { LineWriter } from './writer';

const record: AccessLogRecord = {
  host: 'shop.localhost',
  startedAt: Date.parse('2026-11-25T10:00:00.123Z'),
  requestLine: 'GET /api?q=1 HTTP/1.1',
  status: 200,
  bytesReceived: 0,
  bytesSent: 512,
  referer: '',
  userAgent: 'curl/8.0',
  clientAddress: '127.0.0.1:5555',
  backendAddress: '127.0.0.1:61001',
  forwardedFor: '127.0.0.1',
  forwardedProto: 'http',
  vcapRequestId: '<uuid>',
  responseTimeSeconds: 0.012345,
  gorouterTimeSeconds: 0.00008,
  appId: '<app-id>',
  appIndex: '0',
  instanceId: '<instance-id>',
  routerError: '',
};

t.test("protocol.md's example line, byte for byte", async (t) => {
  t.equal(
    formatAccessLogLine(record),
    'shop.localhost - [2026-11-25T10:00:00.123Z] "GET /api?q=1 HTTP/1.1" 200 0 512 "-" "curl/8.0" "127.0.0.1:5555" "127.0.0.1:61001" x_forwarded_for:"127.0.0.1" x_forwarded_proto:"http" vcap_request_id:"<uuid>" response_time:0.012345 gorouter_time:0.000080 app_id:"<app-id>" app_index:"0" instance_id:"<instance-id>" x_cf_routererror:"-"',
  );
  t.ok(ACCESS_LOG_LINE.test(formatAccessLogLine(record)));
});

t.test('escaping: no value can end the line or a field', async (t) => {
  t.equal(quoted(''), '"-"');
  t.equal(quoted('a"b\\c'), '"a\\"b\\\\c"');
  t.equal(quoted('x\ny\rz\u0000\u007f\u0085\u2028'), '"x\\x0ay\\x0dz\\x00\\x7f\\x85\\u2028"');
  t.equal(quoted('héllo ☃'), '"héllo ☃"', 'printable non-ASCII kept');
  t.equal(bareHost('a b"c'), 'a\\x20b\\"c');
  t.equal(bareHost(''), '-');
  const hostile = formatAccessLogLine({ ...record, userAgent: 'x" x_cf_routererror:"forged\nfake line', host: 'h\nx' });
  t.notMatch(hostile, /\n/);
  const m = ACCESS_LOG_LINE.exec(hostile);
  t.ok(m, 'still one well-formed line');
  t.equal(m![19], '-', 'x_cf_routererror not forged');
  t.equal(formatAccessLogLine({ ...record, responseTimeSeconds: -1 }).includes('response_time:0.000000'), true, 'never negative');
});

async function tempFile(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = fs.mkdtempSync(join(tmpdir(), 'skiff-lw-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'access.log');
}

t.test('LineWriter: buffered, bounded, reopened, flushed on close', async (t) => {
  const path = await tempFile(t);
  const w = new LineWriter({ path, maxBufferBytes: 1000, flushIntervalMs: 20, log: silentLogger });
  await w.open();
  for (let i = 0; i < 50; i++) w.write(`line ${i} ${'x'.repeat(80)}`); // ~90 B each: 11 fit, the rest are dropped
  t.equal(fs.readFileSync(path, 'utf8'), '', 'nothing written synchronously');
  t.ok(w.linesDropped >= 38 && w.linesDropped <= 40, `over the bound: dropped and counted (${w.linesDropped})`);
  t.ok(w.pendingBytes <= 1000, 'memory bound held');
  await new Promise((r) => setTimeout(r, 100));
  const first = fs.readFileSync(path, 'utf8').split('\n').filter(Boolean);
  t.equal(first.length, 50 - w.linesDropped, 'the kept lines are written, whole');
  t.match(first[0], /^line 0 x+$/);

  fs.renameSync(path, `${path}.1`);
  w.write('after rename');
  w.reopen();
  w.write('after reopen');
  await w.close();
  t.equal(w.reopens, 1);
  t.notOk(fs.readFileSync(`${path}.1`, 'utf8').includes('after reopen'), 'the rotated file does not get new lines');
  t.match(fs.readFileSync(path, 'utf8'), /after reopen\n$/, 'close() flushed the last line to the new file');
  w.write('after close');
  t.equal(w.linesDropped, 50 - first.length + 1, 'writes after close are counted as dropped');
});

t.test('AccessLog.websocket: one line per WebSocket, 101 and bytes each way', async (t) => {
  const path = await tempFile(t);
  const log = await AccessLog.open({ path, maxBufferBytes: 65536, sanitizeForwarded: false, log: silentLogger });
  log.websocket({
    startedAt: record.startedAt,
    method: 'GET',
    host: 'chat.localhost',
    path: '/socket?room=1',
    status: 101,
    remoteAddress: '127.0.0.1',
    userAgent: 'ws-client',
    referer: '',
    forwardedFor: '127.0.0.1',
    forwardedProto: 'http',
    requestId: 'req-id',
    backend: '127.0.0.1:61001',
    appId: 'chat',
    instanceIndex: '1',
    instanceId: 'chat-1',
    bytesFromClient: 10,
    bytesToClient: 2000,
    durationMs: 61_500,
    closeCode: 1000,
    closeReason: '',
    closedBy: 'client',
    routerError: undefined,
  });
  await log.close();
  const m = ACCESS_LOG_LINE.exec(fs.readFileSync(path, 'utf8').trimEnd());
  t.ok(m);
  t.equal(m![1], 'chat.localhost');
  t.equal(m![3], 'GET /socket?room=1 HTTP/1.1');
  t.equal(m![4], '101');
  t.equal(m![5], '10');
  t.equal(m![6], '2000');
  t.equal(m![14], '61.500000');
  t.equal(m![15], '0.000000');
  t.equal(m![10], '127.0.0.1:61001');
  t.equal(m![12], 'http');
  t.equal(m![13], 'req-id');
  t.equal(m![16], 'chat');
  t.equal(m![17], '1');
  t.equal(m![19], '-');
  t.equal(log.websocketLines, 1);
});
