// Accounts end to end: password changes, tokens that a change retires, and
// the login lockout, against a real nats-server with JetStream and two real
// `skiff controller` processes that share nothing but it.

import t from 'tap';
import { createHmac } from 'node:crypto';
import { Buckets, emailKey, TOKEN_SECRET_KEY } from '../control/controller/store';
import { ADMIN, startController, testBus, type ApiClient } from './controller_harness';
import { startNats } from './harness';

const tokens = (email: string) => `/users/${encodeURIComponent(email)}/tokens`;
const password = (email: string) => `/users/${encodeURIComponent(email)}/password`;

async function failLogins(api: ApiClient, email: string, times: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < times; i++) statuses.push((await api.post(tokens(email), { password: `wrong-${i}-password` }, { token: null })).status);
  return statuses;
}

t.test('accounts', async (t) => {
  const nats = await startNats(t);
  const first = await startController(t, nats);
  const second = await startController(t, nats);
  const api = first.api;
  api.token = await api.login(ADMIN.email, ADMIN.password);

  const users = {
    ann: { email: 'ann@example.com', password: 'ann-password-1' },
    bob: { email: 'bob@example.com', password: 'bob-password-1' },
    cat: { email: 'cat@example.com', password: 'cat-password-1' },
    dan: { email: 'dan@example.com', password: 'dan-password-1' },
  };
  for (const user of Object.values(users)) t.equal((await api.post('/users', { email: user.email, password: user.password })).status, 201);

  await t.test('a user changes their own password with the right old one', async (t) => {
    const { ann } = users;
    const token = await api.login(ann.email, ann.password);
    const missingOld = await api.put(password(ann.email), { password: 'ann-password-2' }, { token });
    t.equal(missingOld.status, 400);
    t.match(missingOld.json().description, /old_password/);
    const short = await api.put(password(ann.email), { old_password: ann.password, password: 'short1' }, { token });
    t.equal(short.status, 400, 'the new password passes the checks of a new user');
    t.match(short.json().description, /at least 8 characters/);

    const wrong = await api.put(password(ann.email), { old_password: 'not-her-password', password: 'ann-password-2' }, { token });
    t.equal(wrong.status, 403);
    t.same(wrong.json(), { code: 403, description: 'the old password is wrong' });
    t.equal(await api.login(ann.email, ann.password).then(() => 'old still works'), 'old still works', 'a refused change changes nothing');

    const changed = await api.put(password(ann.email), { old_password: ann.password, password: 'ann-password-2' }, { token });
    t.equal(changed.status, 204);
    t.equal((await api.post(tokens(ann.email), { password: ann.password }, { token: null })).status, 401, 'the old password is refused');
    t.equal((await api.post(tokens(ann.email), { password: 'ann-password-2' }, { token: null })).status, 200, 'the new one logs in');
    ann.password = 'ann-password-2';
  });

  await t.test('a deleted user\'s tokens do not come back when the email is registered again', async (t) => {
    const eve = { email: 'eve@example.com', password: 'eve-password-1' };
    t.equal((await api.post('/users', eve)).status, 201);
    const oldToken = await api.login(eve.email, eve.password);
    t.equal((await api.get('/apps', { token: oldToken })).status, 200);
    t.equal((await api.delete(`/users/${encodeURIComponent(eve.email)}`)).status, 204);
    t.equal((await api.post('/users', { ...eve, password: 'another-person-1' })).status, 201, 'someone else gets the email');
    t.equal((await api.get('/apps', { token: oldToken })).status, 401, 'the first owner\'s token is refused');
    t.equal((await api.get('/apps', { token: await api.login(eve.email, 'another-person-1') })).status, 200);
  });

  await t.test('an admin sets another user\'s password without the old one; a user may not', async (t) => {
    const { ann, bob } = users;
    const bobToken = await api.login(bob.email, bob.password);
    const annToken = await api.login(ann.email, ann.password);
    const refused = await api.put(password(bob.email), { password: 'set-by-ann-1' }, { token: annToken });
    t.equal(refused.status, 403);
    t.match(refused.json().description, /only an admin/);
    const withOld = await api.put(password(bob.email), { old_password: bob.password, password: 'set-by-ann-1' }, { token: annToken });
    t.equal(withOld.status, 403, 'knowing the old password does not make it yours');
    t.equal((await api.put(password(ADMIN.email), { password: 'set-by-ann-1' }, { token: annToken })).status, 403, 'nor an admin\'s');
    t.equal((await api.put(password('nobody@example.com'), { password: 'set-by-ann-1' }, { token: annToken })).status, 403, 'a non-admin learns nothing about other emails');
    t.equal(await api.login(bob.email, bob.password).then(() => 'unchanged'), 'unchanged');

    t.equal((await api.put(password(bob.email), { password: 'set-by-admin-1' })).status, 204);
    t.equal((await api.get('/apps', { token: bobToken })).status, 401, "bob's earlier token stops working");
    t.equal((await api.get('/info')).status, 200, "the admin's own token is not touched");
    t.equal((await api.post(tokens(bob.email), { password: 'set-by-admin-1' }, { token: null })).status, 200);
    bob.password = 'set-by-admin-1';

    const unknown = await api.put(password('nobody@example.com'), { password: 'long-enough-1' });
    t.equal(unknown.status, 404);
    t.match(unknown.json().description, /no user nobody@example\.com/);
    t.equal((await api.put(password(bob.email), { password: 'short' })).status, 400);
    t.equal((await api.put(password(bob.email), { password: 'long-enough-1' }, { token: null })).status, 401);
    t.equal((await api.get(password(bob.email))).status, 405);
  });

  await t.test('tokens issued before a change are refused on every controller; a new login works', async (t) => {
    const { cat } = users;
    // A user record of the time before generations (no token_generation), with a
    // token of that time ({email, exp}, no "gen"): generation 0.
    const bus = await testBus(t, nats);
    const usersKv = await bus.nats.jetstream().views.kv(Buckets.users);
    const record = JSON.parse(new TextDecoder().decode((await usersKv.get(emailKey(cat.email)))!.value));
    delete record.token_generation;
    await usersKv.put(emailKey(cat.email), new TextEncoder().encode(JSON.stringify(record)));

    const before = await api.login(cat.email, cat.password);
    const alsoBefore = await second.api.login(cat.email, cat.password);
    t.equal((await second.api.get('/apps', { token: before })).status, 200, 'a token from one controller works on the other');
    const meta = await bus.nats.jetstream().views.kv(Buckets.meta);
    const secret = Buffer.from(new TextDecoder().decode((await meta.get(TOKEN_SECRET_KEY))!.value), 'base64');
    const payload = Buffer.from(JSON.stringify({ email: cat.email, exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
    const legacy = `${payload}.${createHmac('sha256', secret).update(payload).digest('base64url')}`;
    t.equal((await api.get('/apps', { token: legacy })).status, 200, 'an old token without a generation works until a change');

    t.equal((await second.api.put(password(cat.email), { old_password: cat.password, password: 'cat-password-2' }, { token: alsoBefore })).status, 204, 'changed through the second controller');
    for (const [name, token] of [['before', before], ['alsoBefore', alsoBefore], ['legacy', legacy]] as const) {
      for (const controller of [first, second]) {
        const res = await controller.api.get('/apps', { token });
        t.equal(res.status, 401, `${name} refused by controller ${controller === first ? 1 : 2}`);
        t.match(res.json().description, /log in again/);
      }
    }
    const after = await api.login(cat.email, 'cat-password-2');
    t.equal((await api.get('/apps', { token: after })).status, 200, 'the new token works here');
    t.equal((await second.api.get('/info', { token: after })).json().user, cat.email, 'and there');
    cat.password = 'cat-password-2';
  });

  await t.test('5 failed logins lock an email for 5 minutes, even with the right password, on every controller', async (t) => {
    const { dan } = users;
    t.same(await failLogins(first.api, dan.email, 3), [401, 401, 401]);
    t.same(await failLogins(second.api, dan.email, 2), [401, 401], 'the fifth failure is still a plain 401');
    for (const controller of [first, second]) {
      const locked = await controller.api.post(tokens(dan.email), { password: dan.password }, { token: null });
      t.equal(locked.status, 429, 'the right password is refused');
      const retryAfter = Number(locked.headers['retry-after']);
      t.ok(Number.isInteger(retryAfter) && retryAfter > 280 && retryAfter <= 300, `Retry-After ${locked.headers['retry-after']} is the seconds left of 300`);
      t.match(locked.json(), { code: 429, description: /too many failed logins.*try again in \d+ s/ });
    }
  });

  await t.test('unknown emails are locked out alike, so a lockout tells nothing', async (t) => {
    const ghost = 'ghost@example.com';
    t.same(await failLogins(first.api, ghost, 5), [401, 401, 401, 401, 401]);
    const locked = await second.api.post(tokens(ghost), { password: 'anything-at-all' }, { token: null });
    t.equal(locked.status, 429);
    t.ok(Number(locked.headers['retry-after']) > 280);
    const known = await second.api.post(tokens(users.dan.email), { password: 'anything-at-all' }, { token: null });
    t.same(Object.keys(locked.json()), Object.keys(known.json()));
    t.equal(locked.json().description, known.json().description, 'the same answer as for a known email');
  });

  await t.test('a successful login clears the failures', async (t) => {
    const { bob } = users;
    t.same(await failLogins(api, bob.email, 4), [401, 401, 401, 401]);
    t.equal((await api.post(tokens(bob.email), { password: bob.password }, { token: null })).status, 200);
    t.same(await failLogins(second.api, bob.email, 4), [401, 401, 401, 401], 'four more are not five');
    t.equal((await api.post(tokens(bob.email), { password: bob.password }, { token: null })).status, 200);
  });

  await t.test('a wrong old password counts as a failed login, and a lockout stops password changes too', async (t) => {
    const { ann } = users;
    const token = await api.login(ann.email, ann.password);
    for (let i = 0; i < 2; i++) t.equal((await api.put(password(ann.email), { old_password: `guess-${i}-password`, password: 'ann-password-3' }, { token })).status, 403);
    t.same(await failLogins(second.api, ann.email, 3), [401, 401, 401], 'two wrong old passwords and three wrong logins make five');
    t.equal((await api.post(tokens(ann.email), { password: ann.password }, { token: null })).status, 429);
    const change = await api.put(password(ann.email), { old_password: ann.password, password: 'ann-password-3' }, { token });
    t.equal(change.status, 429, 'the right old password is refused while locked');
    t.ok(Number(change.headers['retry-after']) > 0);

    // An admin who sets the password ends the lockout: whoever set it knows the new one.
    t.equal((await api.put(password(ann.email), { password: 'ann-password-4' })).status, 204);
    t.equal((await api.post(tokens(ann.email), { password: 'ann-password-4' }, { token: null })).status, 200);
  });

  await t.test('no password reaches a log', async (t) => {
    const logs = first.log() + second.log();
    t.match(logs, /password changed/, 'changes are logged');
    for (const secret of ['ann-password-2', 'ann-password-4', 'set-by-admin-1', 'cat-password-2', 'not-her-password', 'wrong-0-password', ADMIN.password]) {
      t.notMatch(logs, secret);
    }
  });
});
