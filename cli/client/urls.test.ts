import t from 'tap';
import { appUrls, platformDomain } from './urls';

t.test('app urls use the router port from /info, else 8080', async (t) => {
  t.same(appUrls(['hello.localhost'], undefined), ['http://hello.localhost:8080/']);
  t.same(appUrls(['hello.localhost', 'hello.localhost/api'], 'http://localhost:9999'), ['http://hello.localhost:9999/', 'http://hello.localhost:9999/api/']);
  t.same(appUrls(['shop.example.com'], 'https://example.com'), ['https://shop.example.com/'], 'default port left out');
  t.same(appUrls(['x.localhost'], 'not a url'), ['http://x.localhost:8080/']);
  t.same(appUrls(['x.localhost'], 'ftp://x:21'), ['http://x.localhost:8080/']);
});

t.test('platform domain', async (t) => {
  t.equal(platformDomain({ domain: 'apps.example.com', router_url: 'http://localhost:8080' }), 'apps.example.com');
  t.equal(platformDomain({ router_url: 'http://localhost:8080' }), 'localhost');
  t.equal(platformDomain({ router_url: 'http://127.0.0.1:8080' }), undefined, 'an address is not a domain');
  t.equal(platformDomain({}), undefined);
  t.equal(platformDomain({ router_url: '::' }), undefined);
});
