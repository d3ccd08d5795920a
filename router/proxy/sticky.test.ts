import t from 'tap';
import { affinityCookie, affinityEndpoint, parseCookieNames, stickyInstance, vcapCookieFor } from './sticky';

const names = ['JSESSIONID', 'PHPSESSID'];

t.test('a request is stuck only with a session cookie and __VCAP_ID__', async (t) => {
  t.equal(stickyInstance('JSESSIONID=abc; __VCAP_ID__=inst-1', names), 'inst-1');
  t.equal(stickyInstance('__VCAP_ID__=inst-2;PHPSESSID=x', names), 'inst-2');
  t.equal(stickyInstance('__VCAP_ID__=inst-1', names), undefined, 'no session cookie');
  t.equal(stickyInstance('JSESSIONID=abc', names), undefined, 'no __VCAP_ID__');
  t.equal(stickyInstance('JSESSIONID=abc; __VCAP_ID__=', names), undefined, 'empty id');
  t.equal(stickyInstance('XJSESSIONID=abc; __VCAP_ID__=i', names), undefined, 'names match whole');
});

t.test('the __VCAP_ID__ cookie copies the session cookie attributes that matter', async (t) => {
  t.equal(vcapCookieFor('JSESSIONID=abc', names, 'i-1', ''), '__VCAP_ID__=i-1; Path=/; HttpOnly');
  t.equal(
    vcapCookieFor('JSESSIONID=abc; Path=/x; Secure; SameSite=Strict; Max-Age=60; Domain=a.b; Expires=Wed, 21 Oct 2026 07:28:00 GMT', names, 'i-1', '/api'),
    '__VCAP_ID__=i-1; Path=/api; HttpOnly; Secure; SameSite=Strict; Max-Age=60; Expires=Wed, 21 Oct 2026 07:28:00 GMT',
  );
  t.equal(vcapCookieFor('other=1; Path=/', names, 'i-1', ''), undefined);
  t.equal(vcapCookieFor('PHPSESSID=1', names, 'i-9', ''), '__VCAP_ID__=i-9; Path=/; HttpOnly');
  // An instance id from a registration that would end the cookie pair or the header line.
  for (const id of ['i-1; Domain=evil.example', 'i-1\r\nSet-Cookie: x=1', 'i 1', '']) {
    t.equal(vcapCookieFor('JSESSIONID=abc', names, id, ''), undefined, JSON.stringify(id));
  }
});

t.test('cookie name lists', async (t) => {
  t.same(parseCookieNames('JSESSIONID, SESSIONID,,PHPSESSID '), ['JSESSIONID', 'SESSIONID', 'PHPSESSID']);
});

t.test('affinity: __VCAP_ID__ alone names an endpoint, the first registered one wins', async (t) => {
  const endpoints = [{ instanceId: 'i-1' }, { instanceId: 'i-10' }, { instanceId: '' }];
  const named = (cookie: string) => affinityEndpoint(cookie, endpoints)?.instanceId;
  t.equal(named('__VCAP_ID__=i-1'), 'i-1', 'no session cookie needed');
  t.equal(named('a=b;__VCAP_ID__ = i-10 ; c=d'), 'i-10', 'spaces around the pair');
  t.equal(named('__VCAP_ID__=gone; __VCAP_ID__=i-10'), 'i-10', 'a cookie of another route (Path=/) is passed over');
  t.equal(named('__VCAP_ID__=i-10; __VCAP_ID__=i-1'), 'i-10', 'the first registered one');
  t.equal(named('__VCAP_ID__=i-100'), undefined, 'the whole value must match');
  t.equal(named('__VCAP_ID__=i-'), undefined);
  t.equal(named('__VCAP_ID__='), undefined, 'an empty value names no endpoint, not one without an id');
  t.equal(named('X__VCAP_ID__=i-1'), undefined, 'names match whole');
  t.equal(named('a=__VCAP_ID__=i-1'), undefined, 'inside a value');
  t.equal(named('__VCAP_ID__i-1'), undefined, 'no =');
  t.equal(named(''), undefined);
  t.equal(named('JSESSIONID=x'), undefined);
});

t.test('affinity: the pin cookie', async (t) => {
  t.equal(affinityCookie('i-1', '', []), '__VCAP_ID__=i-1; Path=/; HttpOnly; SameSite=Lax');
  t.equal(affinityCookie('i-1', '/api', ['Content-Type', 'text/plain', 'Set-Cookie', 'JSESSIONID=x']), '__VCAP_ID__=i-1; Path=/api; HttpOnly; SameSite=Lax');
  t.equal(affinityCookie('i-1', '', ['set-cookie', '__VCAP_ID__=mine']), undefined, 'an app that sets __VCAP_ID__ itself keeps it');
  for (const bad of ['', 'a;b', 'a b', 'a,b', 'a"b', 'a\\b', 'a\r\nSet-Cookie: x=1'])
    t.equal(affinityCookie(bad, '', []), undefined, `no cookie for the id ${JSON.stringify(bad)}`);
});
