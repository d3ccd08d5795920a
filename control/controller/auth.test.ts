import t from 'tap';
import { bearerToken, checkPassword, hashPassword, signToken, verifyToken } from './auth';

const secret = Buffer.alloc(32, 7);

t.test('a signed token verifies and carries the email until it expires', async (t) => {
  const { token, expiresAt } = signToken(secret, 'ann@example.com', 1000, 60);
  t.equal(expiresAt, 1060);
  const ok = verifyToken(secret, token, 1059);
  t.ok(ok.ok);
  if (ok.ok) t.equal(ok.claims.email, 'ann@example.com');
  t.same(verifyToken(secret, token, 1060), { ok: false, reason: 'expired' });
});

t.test('a token signed with another secret, or altered, is refused', async (t) => {
  const { token } = signToken(secret, 'ann@example.com', 1000);
  t.same(verifyToken(Buffer.alloc(32, 8), token, 1000), { ok: false, reason: 'bad signature' });
  const [, signature] = token.split('.');
  const forgedPayload = Buffer.from(JSON.stringify({ email: 'admin@example.com', exp: 9e9 })).toString('base64url');
  t.same(verifyToken(secret, `${forgedPayload}.${signature}`, 1000), { ok: false, reason: 'bad signature' });
  t.same(verifyToken(secret, 'garbage', 1000), { ok: false, reason: 'malformed' });
  t.same(verifyToken(secret, '.', 1000), { ok: false, reason: 'malformed' });
});

t.test('passwords are salted scrypt hashes that check only the right password', async (t) => {
  const a = await hashPassword('correct horse');
  const b = await hashPassword('correct horse');
  t.not(a.hash, b.hash, 'random salt: same password, different hash');
  t.notMatch(JSON.stringify(a), /correct horse/);
  t.ok(await checkPassword('correct horse', a));
  t.notOk(await checkPassword('correct horsE', a));
  t.notOk(await checkPassword('', a));
});

t.test('bearer tokens are read from the Authorization header', async (t) => {
  t.equal(bearerToken('Bearer abc.def'), 'abc.def');
  t.equal(bearerToken('bearer  abc.def '), 'abc.def');
  t.equal(bearerToken('Basic abc'), undefined);
  t.equal(bearerToken(undefined), undefined);
});
