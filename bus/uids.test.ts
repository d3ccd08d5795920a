import t from 'tap';
import { UsageError } from './flags';
import { DEFAULT_APP_UIDS, DEFAULT_BUILD_UIDS, inRange, parseUidRange } from './uids';

t.test('a uid range parses from FIRST-LAST and refuses system uids, reversed or huge ranges', async (t) => {
  t.same(parseUidRange(' 2000000 - 2000009 ', '--app-uids'), { first: 2000000, last: 2000009 });
  for (const bad of ['0-100', '999-2000', '5000-4000', 'abc', '2000000', '2000000-9999999999']) {
    t.throws(() => parseUidRange(bad, '--app-uids'), UsageError, bad);
  }
  try {
    parseUidRange('x', 'SKIFF_DEA_APP_UIDS');
  } catch (error) {
    t.match((error as Error).message, /^SKIFF_DEA_APP_UIDS must look like/);
  }
});

t.test('the default app and build ranges do not overlap', async (t) => {
  t.notOk(inRange(DEFAULT_APP_UIDS, DEFAULT_BUILD_UIDS.first));
  t.notOk(inRange(DEFAULT_BUILD_UIDS, DEFAULT_APP_UIDS.last));
  t.ok(inRange(DEFAULT_APP_UIDS, DEFAULT_APP_UIDS.first));
  t.notOk(inRange(DEFAULT_APP_UIDS, 2000000.5));
});
