import t from 'tap';
import { connect } from 'nats';
import { startNats } from '../test/harness';
import { liveEntries, liveKeys, openBucket, openKv, storedKeys } from './jetstream';

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

t.test('liveKeys and liveEntries: the keys holding a value, read without a consumer', async (t) => {
  const nats = await startNats(t);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const kv = await openKv(nc.jetstream(), 'listing', { history: 3 });
  const put = (key: string, value: string) => kv.put(key, new TextEncoder().encode(value));
  await put('app.a', 'one');
  await put('app.b', 'two');
  await put('app.b', 'three');
  await put('app.gone', 'x');
  await kv.delete('app.gone');
  await put('app.purged', 'x');
  await kv.purge('app.purged');
  await put('uid.7', 'seven');

  t.same(await liveKeys(kv), ['app.a', 'app.b', 'uid.7'], 'deleted and purged keys are left out');
  t.same(await liveKeys(kv, 'app.>'), ['app.a', 'app.b'], 'a filter as kv.keys() takes it');
  const entries = await liveEntries(kv, 'app.*');
  t.same(entries.map((e) => [e.key, new TextDecoder().decode(e.value)]).sort(), [['app.a', 'one'], ['app.b', 'three']], 'each key\'s last value');
  t.same(await liveKeys(kv, 'none.>'), [], 'nothing matching: none');
  t.same(await storedKeys(kv, 'app.>'), ['app.a', 'app.b', 'app.gone', 'app.purged'], 'storedKeys: deleted and purged keys too (their markers)');
  const info = await (await nc.jetstreamManager()).streams.info('KV_listing');
  t.equal(info.state.consumer_count, 0, 'no consumer was made');
});
