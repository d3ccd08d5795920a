import t from 'tap';
import { openBucket } from './jetstream';

t.test('a bucket whose stream another process created meanwhile is opened again', async (t) => {
  let calls = 0;
  const value = await openBucket(async () => {
    if (++calls < 3) throw new Error('subjects overlap with an existing stream');
    return 'bucket';
  });
  t.equal(value, 'bucket');
  t.equal(calls, 3);
});

t.test('other failures, and a race that does not end, are not hidden', async (t) => {
  await t.rejects(openBucket(async () => { throw new Error('jetstream not enabled'); }), /jetstream not enabled/);
  let calls = 0;
  await t.rejects(openBucket(async () => { calls++; throw new Error('stream name already in use'); }, 3), /already in use/);
  t.equal(calls, 3);
});
