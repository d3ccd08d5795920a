import t from 'tap';
import { UsageError } from '../../bus/flags';
import { decodeJoinToken, encodeJoinToken } from './token';

t.test('a join token round-trips, and a damaged one is one clear error that never echoes it', async (t) => {
  const token = { servers: ['nats://10.0.0.1:4222', 'nats://10.0.0.2:4222'], user: 'node', pass: 's3cret-pass' };
  const text = encodeJoinToken(token);
  t.match(text, /^skiff1-[A-Za-z0-9_-]+$/, 'one word, safe in a shell and an environment file');
  t.same(decodeJoinToken(text), token);
  t.same(decodeJoinToken(` ${text}\n`), token, 'pasted with spaces');
  for (const bad of ['', 'hello', 'skiff1-', 'skiff1-!!!', `skiff1-${Buffer.from('{"s":[],"u":"node","p":"x"}').toString('base64url')}`, text.slice(0, -6)]) {
    t.throws(() => decodeJoinToken(bad, 'SKIFF_UP_JOIN'), UsageError, JSON.stringify(bad));
    try {
      decodeJoinToken(bad, 'SKIFF_UP_JOIN');
    } catch (error) {
      t.match((error as Error).message, /^SKIFF_UP_JOIN is/);
      if (bad.length > 10) t.notMatch((error as Error).message, new RegExp(bad.slice(7, 17)));
    }
  }
  const credentialsInUrl = `skiff1-${Buffer.from(JSON.stringify({ s: ['nats://u:p@h:4222'], u: 'node', p: 'x' })).toString('base64url')}`;
  t.throws(() => decodeJoinToken(credentialsInUrl), UsageError, 'server URLs carry no credentials');
});
