import t from 'tap';
import { createHmac } from 'node:crypto';
import { basicCredentials, bearerToken, checkPassword, cookieToken, hashPassword, signToken, tokenCookie, verifyToken } from './auth';

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

t.test('a token carries the token generation it was issued with; one without it is generation 0', async (t) => {
  const { token } = signToken(secret, 'ann@example.com', 1000, 60, 3);
  const checked = verifyToken(secret, token, 1000);
  t.ok(checked.ok);
  if (checked.ok) t.equal(checked.claims.generation, 3);
  const fresh = verifyToken(secret, signToken(secret, 'ann@example.com', 1000).token, 1000);
  t.ok(fresh.ok && fresh.claims.generation === 0, 'the default is 0');

  // The shape tokens had before generations: {email, exp}, signed the same way.
  const sign = (claims: object) => {
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${payload}.${createHmac('sha256', secret).update(payload).digest('base64url')}`;
  };
  const legacy = verifyToken(secret, sign({ email: 'ann@example.com', exp: 2000 }), 1000);
  t.ok(legacy.ok, 'an old token still verifies');
  if (legacy.ok) t.equal(legacy.claims.generation, 0);
  for (const gen of [-1, 1.5, '2', null]) {
    t.same(verifyToken(secret, sign({ email: 'ann@example.com', exp: 2000, gen }), 1000), { ok: false, reason: 'malformed' }, `gen ${JSON.stringify(gen)}`);
  }
});

t.test('console cookie and basic credentials', async (t) => {
  t.equal(cookieToken('a=1; skiff_token=abc.def; b=2'), 'abc.def');
  t.equal(cookieToken('skiff_tokens=x; other=skiff_token'), undefined, 'exact name only');
  t.equal(cookieToken('skiff_token='), undefined, 'an empty cookie is none');
  t.equal(cookieToken(undefined), undefined);
  t.same(basicCredentials(`Basic ${Buffer.from('ann@example.com:pa:ss').toString('base64')}`), { user: 'ann@example.com', password: 'pa:ss' }, 'the password may hold a colon');
  t.equal(basicCredentials('Bearer abc'), undefined);
  t.equal(basicCredentials(`Basic ${Buffer.from('nocolon').toString('base64')}`), undefined);
  t.equal(tokenCookie('tok', 60.7, false), 'skiff_token=tok; Path=/; Max-Age=60; HttpOnly; SameSite=Strict');
  t.match(tokenCookie('', -5, true), /Max-Age=0; HttpOnly; SameSite=Strict; Secure$/);
});
