// The console's session on a real controller: a login sets the CLI's token
// in an HttpOnly, SameSite=Strict, host-only cookie; the cookie reads, but
// changes only with X-Skiff-Console (a sibling app's page cannot add it
// without a preflight the API never grants); the feed streams snapshots;
// a bad login is one clear error; logout clears the cookie.

import * as http from 'node:http';
import t from 'tap';
import { ADMIN, startController } from './controller_harness';
import { startNats } from './harness';

t.test('console session, cookie rules and the live feed', async (t) => {
  const nats = await startNats(t);
  const controller = await startController(t, nats);
  const api = controller.api;

  const bad = await api.request('POST', '/console/session', { body: { email: ADMIN.email, password: 'wrong-password' }, token: null });
  t.equal(bad.status, 401);
  t.equal(bad.headers['set-cookie'], undefined, 'no cookie for a failed login');
  t.equal((await api.request('POST', '/console/session', { body: { password: 'x' }, token: null })).status, 400, 'no email: 400');

  const login = await api.request('POST', '/console/session', { body: { email: ADMIN.email, password: ADMIN.password }, token: null });
  t.equal(login.status, 200);
  t.same(login.json(), { user: ADMIN.email, admin: true });
  const setCookie = String(login.headers['set-cookie']);
  t.match(setCookie, /^skiff_token=[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict$/, 'HttpOnly, SameSite=Strict, no Domain');
  const cookie = setCookie.split(';')[0]!;
  t.notOk(login.body.toString().includes(cookie.slice('skiff_token='.length)), 'the token is not in the body');

  t.equal((await api.request('GET', '/console/session', { headers: { cookie }, token: null })).status, 200, 'the cookie logs reads in');
  t.equal((await api.request('GET', '/apps', { headers: { cookie }, token: null })).status, 200, 'the REST API reads with it');
  const created = await api.request('POST', '/apps', { body: { name: 'shop', uris: [] }, headers: { cookie }, token: null });
  t.equal(created.status, 401, 'a change with the cookie alone is refused (what a sibling app could send)');
  const allowed = await api.request('POST', '/apps', { body: { name: 'shop', uris: [] }, headers: { cookie, 'x-skiff-console': '1' }, token: null });
  t.equal(allowed.status, 201, `with X-Skiff-Console it goes through (${allowed.body})`);
  const preflight = await api.request('OPTIONS', '/apps', { headers: { origin: 'http://evil.localhost:8080', 'access-control-request-method': 'POST' }, token: null });
  t.equal(preflight.headers['access-control-allow-origin'], undefined, 'no CORS grant for another origin');

  // The feed: an event stream with snapshots of the apps.
  const first = await new Promise<string>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: controller.port, path: '/console/events', headers: { cookie } }, (res) => {
      t.equal(res.statusCode, 200);
      t.match(String(res.headers['content-type']), /^text\/event-stream/);
      let text = '';
      res.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('event: snapshot\ndata: ') && text.endsWith('\n\n')) {
          req.destroy();
          resolve(text);
        }
      });
    });
    req.on('error', reject);
  });
  const data = JSON.parse(/event: snapshot\ndata: (.*)\n\n/.exec(first)![1]!) as { user: string; apps: Array<{ name: string; state: string; usage: unknown[] }> };
  t.equal(data.user, ADMIN.email);
  t.match(data.apps, [{ name: 'shop', state: 'STOPPED', usage: [] }]);
  t.equal((await api.request('GET', '/console/events', { token: null })).status, 401, 'no feed without a login');

  const out = await api.request('DELETE', '/console/session', { token: null });
  t.equal(out.status, 204);
  t.match(String(out.headers['set-cookie']), /^skiff_token=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict$/, 'logout clears the cookie');
  t.equal((await api.request('GET', '/console', { token: null })).status, 301, '/console redirects to /console/');
});
