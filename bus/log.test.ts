import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger, formatLine, formatValue, levelFromEnv, type LoggerOptions } from './log';

function collect(opts: Omit<LoggerOptions, 'stream'> = {}, component = 'router') {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger(component, { ...opts, stream }), chunks };
}

t.test('one line per event, in the agreed format', async (t) => {
  const { logger, chunks } = collect({ level: 'info' });
  logger.info('message', { key: 'value', key2: 'quoted value', n: 3, ok: true, none: undefined, nil: null });
  t.equal(chunks.length, 1);
  t.match(chunks[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO router: message key=value key2="quoted value" n=3 ok=true nil=null\n$/);
  t.equal(
    formatLine(new Date('2026-11-26T10:00:00.000Z'), 'warn', 'dea', 'low memory', { free_mb: 12 }),
    '2026-11-26T10:00:00.000Z WARN dea: low memory free_mb=12',
  );
});

t.test('levels filter, and SKIFF_LOG_LEVEL is the default', async (t) => {
  const { logger, chunks } = collect({ level: 'warn' });
  logger.debug('d');
  logger.info('i');
  logger.warn('w');
  logger.error('e');
  t.same(chunks.map((c) => c.split(' ')[1]), ['WARN', 'ERROR']);

  t.equal(levelFromEnv({ SKIFF_LOG_LEVEL: 'debug' }), 'debug');
  t.equal(levelFromEnv({ SKIFF_LOG_LEVEL: ' ERROR ' }), 'error');
  t.equal(levelFromEnv({ SKIFF_LOG_LEVEL: 'loud' }), 'info', 'unknown level falls back to info');
  t.equal(levelFromEnv({}), 'info');

  const saved = process.env.SKIFF_LOG_LEVEL;
  t.teardown(() => {
    if (saved === undefined) delete process.env.SKIFF_LOG_LEVEL;
    else process.env.SKIFF_LOG_LEVEL = saved;
  });
  process.env.SKIFF_LOG_LEVEL = 'debug';
  const fromEnv = collect();
  fromEnv.logger.debug('visible');
  t.equal(fromEnv.chunks.length, 1, 'debug shown when the environment asks for it');
});

t.test('values cannot break the line or forge fields', async (t) => {
  const { logger, chunks } = collect({ level: 'debug' });
  logger.info('two\nlines', { evil: 'x\n2026-11-26T10:00:00.000Z ERROR router: forged', 'bad key': 'a=b' });
  t.equal(chunks.length, 1);
  t.equal(chunks[0]!.split('\n').length, 2, 'exactly one newline, at the end');
  t.match(chunks[0], /router: two\\nlines evil="x\\n2026-11-26T10:00:00.000Z ERROR router: forged" bad_key="a=b"\n$/);
  t.equal(formatValue(''), '""');
  t.equal(formatValue(new Error('boom here')), '"boom here"');
  t.equal(formatValue({ a: 1 }), '"{\\"a\\":1}"');
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  t.equal(formatValue(circular), '"[object Object]"', 'circular objects do not throw');
  t.equal(formatValue(new Date('2026-11-26T10:00:00.000Z')), '2026-11-26T10:00:00.000Z');
});
