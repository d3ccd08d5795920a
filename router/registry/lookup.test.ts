import t from 'tap';
import { contextPathCovers, nextWildcard, normalizeHost, parseRouteUri } from './lookup';

t.test('normalizeHost lowercases, strips the port and the root dot', async (t) => {
  t.equal(normalizeHost('Shop.LOCALHOST:8080'), 'shop.localhost');
  t.equal(normalizeHost('shop.localhost'), 'shop.localhost');
  t.equal(normalizeHost('shop.localhost.'), 'shop.localhost');
  t.equal(normalizeHost('[::1]:8080'), '[::1]');
  t.equal(normalizeHost(''), '');
  t.equal(normalizeHost(':8080'), '');
});

t.test('nextWildcard walks a.b.c -> *.b.c -> *.c -> nothing', async (t) => {
  t.equal(nextWildcard('a.b.c'), '*.b.c');
  t.equal(nextWildcard('*.b.c'), '*.c');
  t.equal(nextWildcard('*.c'), undefined);
  t.equal(nextWildcard('localhost'), undefined);
});

t.test('parseRouteUri splits host and context path', async (t) => {
  t.same(parseRouteUri('Shop.Localhost/API/'), { host: 'shop.localhost', path: '/api' });
  t.same(parseRouteUri('shop.localhost'), { host: 'shop.localhost', path: '' });
  t.same(parseRouteUri('shop.localhost:80/a/b?x=1'), { host: 'shop.localhost', path: '/a/b' });
  t.same(parseRouteUri('http://shop.localhost/'), { host: 'shop.localhost', path: '' });
  t.equal(parseRouteUri('/only-path'), undefined);
  t.equal(parseRouteUri('bad host'), undefined);
});

t.test('contextPathCovers matches on segment boundaries only', async (t) => {
  t.ok(contextPathCovers('', '/anything'));
  t.ok(contextPathCovers('/api', '/api'));
  t.ok(contextPathCovers('/api', '/api/'));
  t.ok(contextPathCovers('/api', '/api/v1'));
  t.notOk(contextPathCovers('/api', '/apix'));
  t.notOk(contextPathCovers('/api', '/'));
});
