import t from 'tap';
import { checkAppChange, checkLogin, checkNewApp, checkNewService, checkNewUser, checkPasswordChange, isAppName, isServiceName } from './validation';

t.test('app names become host names: lowercase letters, digits, dashes', async (t) => {
  for (const good of ['a', 'hello', 'my-app-2', '0x', 'a'.repeat(63)]) t.ok(isAppName(good), good);
  for (const bad of ['', '-a', 'Hello', 'my_app', 'a.b', 'a'.repeat(64), 'é', 'a b']) t.notOk(isAppName(bad), bad);
});

t.test('a new app gets the documented defaults', async (t) => {
  t.same(checkNewApp({ name: 'shop' }, 'localhost'), {
    ok: true,
    value: { name: 'shop', instances: 1, memory: 256, uris: ['shop.localhost'], env: {}, command: null, session_affinity: false, services: [], autoscale: null },
  });
  const full = checkNewApp({ name: 'shop', instances: 3, memory: 64, uris: ['Shop.Example.com', 'shop.example.com/api'], env: { A: '1' }, command: 'node x.js', session_affinity: true }, 'localhost');
  t.same(full, { ok: true, value: { name: 'shop', instances: 3, memory: 64, uris: ['shop.example.com', 'shop.example.com/api'], env: { A: '1' }, command: 'node x.js', session_affinity: true, services: [], autoscale: null } });
});

t.test('bad app fields are named in the error', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /JSON object/],
    [{ name: 'Bad_Name' }, /name must be/],
    [{ name: 'ok', instances: -1 }, /instances/],
    [{ name: 'ok', instances: 1.5 }, /instances/],
    [{ name: 'ok', memory: 1 }, /memory/],
    [{ name: 'ok', uris: 'x' }, /uris/],
    [{ name: 'ok', uris: ['bad host'] }, /uris\[0\]/],
    [{ name: 'ok', env: { '1A': 'x' } }, /env keys/],
    [{ name: 'ok', env: { A: 1 } }, /env\.A/],
    [{ name: 'ok', session_affinity: 'true' }, /session_affinity must be true or false/],
  ];
  for (const [body, error] of cases) {
    const result = checkNewApp(body, 'localhost');
    t.notOk(result.ok, JSON.stringify(body));
    if (!result.ok) t.match(result.error, error);
  }
});

t.test('an app change holds only the fields given', async (t) => {
  t.same(checkAppChange({ state: 'STARTED' }), { ok: true, value: { state: 'STARTED' } });
  t.same(checkAppChange({ instances: 0, memory: 128 }), { ok: true, value: { instances: 0, memory: 128 } });
  t.same(checkAppChange({ session_affinity: false }), { ok: true, value: { session_affinity: false } });
  t.notOk(checkAppChange({ session_affinity: 1 }).ok);
  t.notOk(checkAppChange({ state: 'RUNNING' }).ok);
  t.notOk(checkAppChange({ name: 'other' }).ok);
  t.notOk(checkAppChange([]).ok);
});

t.test('users need an email and a long enough password, never echoed', async (t) => {
  t.same(checkNewUser({ email: ' Bob@Example.com ', password: 'longenough' }), { ok: true, value: { email: 'bob@example.com', password: 'longenough', admin: false } });
  const short = checkNewUser({ email: 'bob@example.com', password: 'secret1' });
  t.notOk(short.ok);
  if (!short.ok) t.notMatch(short.error, /secret1/);
  t.notOk(checkNewUser({ email: 'not-an-email', password: 'longenough' }).ok);
  t.notOk(checkNewUser({ email: 'a@b', password: 'longenough', admin: 'yes' }).ok);
  t.notOk(checkLogin({}).ok);
  t.ok(checkLogin({ password: 'x' }).ok);
});

t.test('a password change: the new password passes the new-user rules, old_password is optional', async (t) => {
  t.same(checkPasswordChange({ password: 'longenough' }), { ok: true, value: { oldPassword: undefined, password: 'longenough' } });
  t.same(checkPasswordChange({ old_password: 'x', password: 'longenough' }), { ok: true, value: { oldPassword: 'x', password: 'longenough' } });
  const short = checkPasswordChange({ old_password: 'old-secret', password: 'secret1' });
  t.same(short, checkNewUser({ email: 'a@b.c', password: 'secret1' }), 'the same refusal as for a new user');
  if (!short.ok) t.notMatch(short.error, /secret1|old-secret/);
  t.notOk(checkPasswordChange({ password: 12345678 }).ok);
  t.notOk(checkPasswordChange({ old_password: '', password: 'longenough' }).ok);
  t.notOk(checkPasswordChange({ old_password: 5, password: 'longenough' }).ok);
  t.notOk(checkPasswordChange(undefined).ok);
});

t.test('services: names on apps, and a new service\'s fields', async (t) => {
  for (const good of ['db', 'notes_db', 'cache-2', 'a'.repeat(63)]) t.ok(isServiceName(good), good);
  for (const bad of ['', '-a', 'DB', 'a.b', 'a b', 'a'.repeat(64), '../x']) t.notOk(isServiceName(bad), bad);
  t.same(checkNewApp({ name: 'shop', services: ['db', 'cache', 'db'] }, 'localhost'), {
    ok: true,
    value: { name: 'shop', instances: 1, memory: 256, uris: ['shop.localhost'], env: {}, command: null, session_affinity: false, services: ['db', 'cache'], autoscale: null },
  }, 'repeats dropped, order kept');
  t.same(checkAppChange({ services: [] }), { ok: true, value: { services: [] } }, 'an empty list unbinds all');
  t.match(checkAppChange({ services: 'db' }), { ok: false, error: /services must be an array of at most 20 service names/ });
  t.match(checkAppChange({ services: ['ok', 'Not OK'] }), { ok: false, error: /services\[1\] must be 1-63 lowercase letters/ });
  t.match(checkAppChange({ services: Array.from({ length: 21 }, (_, i) => `s${i}`) }), { ok: false, error: /at most 20/ });

  t.same(checkNewService({ name: 'db', service: 'postgresql' }), { ok: true, value: { name: 'db', service: 'postgresql', plan: 'free' } }, 'the plan defaults to free');
  t.same(checkNewService({ name: 'db', service: 'redis', plan: 'large' }), { ok: true, value: { name: 'db', service: 'redis', plan: 'large' } });
  t.match(checkNewService({ name: 'DB', service: 'redis' }), { ok: false, error: /^name must be/ });
  t.match(checkNewService({ name: 'db', service: 'a b' }), { ok: false, error: /^service must be the name of an offering/ });
  t.match(checkNewService({ name: 'db', service: 'redis', plan: 5 }), { ok: false, error: /^plan must be/ });
  t.match(checkNewService([]), { ok: false, error: /JSON object/ });
});

t.test('a new app may come with an autoscale policy: its count starts at min and stays within it', async (t) => {
  const policy = { min: 2, max: 4, target_rps: 50 };
  const created = checkNewApp({ name: 'shop', autoscale: policy }, 'localhost');
  t.ok(created.ok && created.value.instances === 2 && created.value.autoscale !== null, 'min instances');
  t.same(checkNewApp({ name: 'shop', instances: 5, autoscale: policy }, 'localhost'), { ok: false, error: "instances must be within the autoscale policy's 2-4" });
  t.same(checkNewApp({ name: 'shop', autoscale: { min: 1 } }, 'localhost'), { ok: false, error: 'autoscale.max must be a whole number from min (1) to 100' });
  t.same(checkAppChange({ autoscale: null }), { ok: true, value: { autoscale: null } });
});
