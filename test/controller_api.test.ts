// The controller's REST API end to end: a real nats-server with JetStream, a
// real `skiff controller` process, HTTP from the test.

import t from 'tap';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { signToken } from '../control/controller/auth';
import { Buckets, emailKey, TOKEN_SECRET_KEY } from '../control/controller/store';
import { ADMIN, startController, testBus } from './controller_harness';
import { eventually, startNats } from './harness';

const PACKAGE = gzipSync(Buffer.from('pretend this is a tar'));

t.test('controller REST API', async (t) => {
  const nats = await startNats(t);
  const controller = await startController(t, nats, { args: ['--max-upload-mb', '1', '--user-apps', '3'] });
  const api = controller.api;

  await t.test('info answers without a token', async (t) => {
    const res = await api.get('/info', { token: null });
    t.equal(res.status, 200);
    t.equal(res.json().name, 'skiff');
    t.notOk(res.json().user);
  });

  await t.test('the first admin logs in; wrong passwords and tokens get 401', async (t) => {
    t.equal((await api.post(`/users/${ADMIN.email}/tokens`, { password: 'wrong-password' }, { token: null })).status, 401);
    t.equal((await api.post('/users/nobody@example.com/tokens', { password: ADMIN.password }, { token: null })).status, 401);
    t.equal((await api.post(`/users/${ADMIN.email}/tokens`, {}, { token: null })).status, 400);
    const login = await api.post(`/users/${encodeURIComponent(ADMIN.email)}/tokens`, { password: ADMIN.password }, { token: null });
    t.equal(login.status, 200);
    t.ok(login.json().expires_at > Date.now() / 1000 + 6 * 24 * 3600, 'valid for days');
    api.token = login.json().token;
    const info = await api.get('/info');
    t.equal(info.json().user, ADMIN.email);

    const noToken = await api.get('/apps', { token: null });
    t.equal(noToken.status, 401);
    t.match(noToken.json(), { code: 401, description: /log/ });
    t.equal((await api.get('/apps', { token: 'forged.token' })).status, 401);
    const [payload] = api.token!.split('.');
    t.equal((await api.get('/apps', { token: `${payload}.${Buffer.alloc(32).toString('base64url')}` })).status, 401, 'right claims, wrong signature');

    // A correctly signed token past its expiry: the secret is the shared one in KV.
    const bus = await testBus(t, nats);
    const kv = await bus.nats.jetstream().views.kv(Buckets.meta);
    const secret = Buffer.from(new TextDecoder().decode((await kv.get(TOKEN_SECRET_KEY))!.value), 'base64');
    const expired = signToken(secret, ADMIN.email, Date.now() / 1000 - 100, 10).token;
    const res = await api.get('/apps', { token: expired });
    t.equal(res.status, 401);
    t.match(res.json().description, /expired/);
    const users = await bus.nats.jetstream().views.kv(Buckets.users);
    const generation = JSON.parse(new TextDecoder().decode((await users.get(emailKey(ADMIN.email)))!.value)).token_generation as number;
    const fresh = signToken(secret, ADMIN.email, Date.now() / 1000, 60, generation).token;
    t.equal((await api.get('/apps', { token: fresh })).status, 200, 'a fresh one with the same secret (and the user\'s token generation) works');
    t.notMatch(controller.log(), ADMIN.password, 'the password never reaches the log');
  });

  const ann = { email: 'ann@example.com', password: 'ann-password' };
  const bob = { email: 'bob@example.com', password: 'bob-password' };
  let annToken = '';
  let bobToken = '';

  await t.test('an admin adds and lists users; others may not', async (t) => {
    t.equal((await api.post('/users', { email: ann.email, password: ann.password })).status, 201);
    t.equal((await api.post('/users', { email: bob.email, password: bob.password })).status, 201);
    t.equal((await api.post('/users', { email: ann.email, password: 'another-one' })).status, 409);
    const short = await api.post('/users', { email: 'c@example.com', password: 'short' });
    t.equal(short.status, 400);
    t.notMatch(short.body.toString(), /short"/);
    annToken = await api.login(ann.email, ann.password);
    bobToken = await api.login(bob.email, bob.password);
    t.equal((await api.post('/users', { email: 'd@example.com', password: 'long-enough' }, { token: annToken })).status, 403);
    t.equal((await api.get('/users', { token: annToken })).status, 403);
    const users = await api.get('/users');
    t.same(users.json(), [
      { email: ADMIN.email, admin: true },
      { email: ann.email, admin: false },
      { email: bob.email, admin: false },
    ]);
    t.notMatch(users.body.toString(), /hash|salt/);
  });

  await t.test('apps: create with defaults, validation errors, unique names', async (t) => {
    const created = await api.post('/apps', { name: 'shop' }, { token: annToken });
    t.equal(created.status, 201);
    t.match(created.json(), {
      name: 'shop', state: 'STOPPED', instances: 1, memory: 256, uris: ['shop.localhost'], env: {},
      owner: ann.email, package_state: 'PENDING', droplet: null, runningInstances: 0,
    });
    t.match(created.json().id, /^[0-9a-f]+$/);
    t.equal((await api.post('/apps', { name: 'shop' }, { token: bobToken })).status, 409, 'names are unique across users');
    const bad = await api.post('/apps', { name: 'Bad_Name' }, { token: annToken });
    t.equal(bad.status, 400);
    t.match(bad.json(), { code: 400, description: /name/ });
    t.equal((await api.post('/apps', { name: 'x', memory: 1 }, { token: annToken })).status, 400);
    t.equal((await api.request('POST', '/apps', { raw: Buffer.from('{not json'), token: annToken })).status, 400);
    t.equal((await api.put('/apps/shop', { state: 'STARTED' }, { token: annToken })).status, 400, 'no droplet yet');
    const scaled = await api.put('/apps/shop', { instances: 3, env: { GREETING: 'hi' } }, { token: annToken });
    t.equal(scaled.status, 200);
    t.match(scaled.json(), { instances: 3, env: { GREETING: 'hi' }, state: 'STOPPED' });
    t.equal((await api.put('/apps/shop', { instances: -1 }, { token: annToken })).status, 400);
    t.equal((await api.get('/apps/nope', { token: annToken })).status, 404);
    t.equal((await api.get('/nowhere', { token: annToken })).status, 404);
  });

  await t.test('a user sees and changes only their own apps; an admin acts with ?group=', async (t) => {
    t.equal((await api.post('/apps', { name: 'bobs' }, { token: bobToken })).status, 201);
    t.same((await api.get('/apps', { token: annToken })).json().map((a: any) => a.name), ['shop']);
    t.same((await api.get('/apps', { token: bobToken })).json().map((a: any) => a.name), ['bobs']);
    t.equal((await api.get('/apps/shop', { token: bobToken })).status, 403);
    t.equal((await api.put('/apps/shop', { instances: 0 }, { token: bobToken })).status, 403);
    t.equal((await api.delete('/apps/shop', { token: bobToken })).status, 403);
    t.equal((await api.get(`/apps?group=${ann.email}`, { token: bobToken })).status, 403, '--group is for admins');
    t.same((await api.get(`/apps?group=${ann.email}`)).json().map((a: any) => a.name), ['shop']);
    t.same((await api.get('/apps?all=1')).json().map((a: any) => a.name), ['bobs', 'shop']);
    t.same((await api.get('/apps')).json(), [], "the admin's own list");
    t.equal((await api.get(`/apps/shop?group=${bob.email}`)).status, 404, 'not in that group');
    t.equal((await api.get(`/apps/shop?group=${ann.email}`)).status, 200);
    const made = await api.post(`/apps?group=${bob.email}`, { name: 'made-for-bob' });
    t.equal(made.status, 201);
    t.equal(made.json().owner, bob.email);
  });

  await t.test('routes belong to one app; users have an app limit', async (t) => {
    const taken = await api.post('/apps', { name: 'thief', uris: ['shop.localhost'] }, { token: bobToken });
    t.equal(taken.status, 409);
    t.match(taken.json().description, /shop.localhost is taken/);
    t.equal((await api.post('/apps', { name: 'api' }, { token: bobToken })).status, 409, "api.<domain> is the platform's");
    t.equal((await api.put('/apps/bobs', { uris: ['bobs.localhost', 'SHOP.localhost'] }, { token: bobToken })).status, 409);
    t.equal((await api.put('/apps/shop', { uris: ['shop.localhost', 'www.shop.localhost'] }, { token: annToken })).status, 200, 'keeping its own uri is fine');

    t.equal((await api.post('/apps', { name: 'a2' }, { token: annToken })).status, 201);
    t.equal((await api.post('/apps', { name: 'a3' }, { token: annToken })).status, 201);
    const over = await api.post('/apps', { name: 'a4' }, { token: annToken });
    t.equal(over.status, 403);
    t.match(over.json().description, /limit/);
    t.match((await api.get('/info', { token: annToken })).json(), { user: ann.email, admin: false, usage: { apps: 3, memory: 0 }, limits: { apps: 3 } });
    t.equal((await api.delete('/apps/a2', { token: annToken })).status, 204);
    t.equal((await api.delete('/apps/a3', { token: annToken })).status, 204);
  });

  await t.test('uploads: size limit, format, checksum, and a clear failure with no stager', async (t) => {
    const tooBig = Buffer.alloc(1024 * 1024 + 1, 1);
    tooBig[0] = 0x1f;
    tooBig[1] = 0x8b;
    tooBig[2] = 0x08;
    const big = await api.request('PUT', '/apps/shop/application', { raw: tooBig, token: annToken });
    t.equal(big.status, 413);
    const text = await api.request('PUT', '/apps/shop/application', { raw: Buffer.from('just some text'), token: annToken });
    t.equal(text.status, 415);
    const wrongSha = await api.request('PUT', '/apps/shop/application', { raw: PACKAGE, token: annToken, headers: { 'x-skiff-sha256': 'a'.repeat(64) } });
    t.equal(wrongSha.status, 400);
    t.match(wrongSha.json().description, /sha256/);
    t.equal((await api.request('PUT', '/apps/shop/application', { raw: Buffer.alloc(0), token: annToken })).status, 400);
    t.equal((await api.request('PUT', '/apps/shop/application', { raw: PACKAGE, token: bobToken })).status, 403);
    t.equal((await api.get('/apps/shop', { token: annToken })).json().package_state, 'PENDING', 'refused uploads change nothing');

    const sha = createHash('sha256').update(PACKAGE).digest('hex');
    const ok = await api.request('PUT', '/apps/shop/application', { raw: PACKAGE, token: annToken, headers: { 'x-skiff-sha256': sha } });
    t.equal(ok.status, 202);
    t.same(ok.json(), { sha256: sha, size: PACKAGE.length, package_state: 'STAGING' });
    let app: any;
    await eventually(async () => {
      app = (await api.get('/apps/shop', { token: annToken })).json();
      return app.package_state === 'FAILED';
    }, 'staging to fail without a stager', 10_000);
    t.match(app.staging_error, /no stager/);
    const log = await api.get('/apps/shop/staging_log', { token: annToken });
    t.equal(log.status, 200);
    t.match(log.body.toString(), /no stager/);

    const bus = await testBus(t, nats);
    const bits = await bus.nats.jetstream().views.os('skiff_bits');
    t.ok(await bits.info(`${app.id}.${sha}`), 'bits stored under bitsObjectName');
  });

  await t.test('deleting an app, and a user with their apps', async (t) => {
    const shop = (await api.get('/apps/shop', { token: annToken })).json();
    t.equal((await api.delete('/apps/shop', { token: annToken })).status, 204);
    t.equal((await api.get('/apps/shop', { token: annToken })).status, 404);
    const bus = await testBus(t, nats);
    const bits = await bus.nats.jetstream().views.os('skiff_bits');
    t.same((await bits.list()).filter((o) => o.name.startsWith(shop.id)), [], 'its bits are gone');
    t.equal((await api.post('/apps', { name: 'shop' }, { token: bobToken })).status, 201, 'the name is free again');

    t.equal((await api.delete(`/users/${ADMIN.email}`)).status, 400, 'no deleting yourself');
    t.equal((await api.delete(`/users/${bob.email}`, { token: annToken })).status, 403);
    t.equal((await api.delete(`/users/${bob.email}`)).status, 204);
    t.equal((await api.get('/apps', { token: bobToken })).status, 401, "a deleted user's token stops working");
    t.same((await api.get('/apps?all=1')).json().map((a: any) => a.name), [], "bob's apps went with him");
    t.equal((await api.delete('/users/nobody@example.com')).status, 404);
  });
});
