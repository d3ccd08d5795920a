import t from 'tap';
import { parseCookieNames, stickyInstance, vcapCookieFor } from './sticky';

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
});

t.test('cookie name lists', async (t) => {
  t.same(parseCookieNames('JSESSIONID, SESSIONID,,PHPSESSID '), ['JSESSIONID', 'SESSIONID', 'PHPSESSID']);
});
