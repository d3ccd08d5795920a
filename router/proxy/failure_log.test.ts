import t from 'tap';
import type { Logger } from '../../bus/log';
import { FailureLog } from './failure_log';

t.test('one line per backend per interval, with the count of the rest', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const log: Logger = { debug() {}, info() {}, error() {}, warn: (_msg, fields) => lines.push(fields ?? {}) };
  const failures = new FailureLog(log, 'backend request failed', 5000);
  for (let i = 0; i < 100; i++) failures.failed('a:1', 'h', 1, 'refused', 1000 + i);
  failures.failed('b:2', 'h', 1, 'refused', 1100);
  t.equal(lines.length, 2, 'the first failure of each backend is logged');
  failures.failed('a:1', 'h', 1, 'refused', 7000);
  t.equal(lines.length, 3);
  t.match(lines[2], { backend: 'a:1', suppressed: 99 });
});
