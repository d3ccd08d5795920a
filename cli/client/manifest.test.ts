import t from 'tap';
import { parseManifest } from './manifest';

t.test('a single app with CF fields', async (t) => {
  const m = parseManifest(`
name: shop
instances: 2
memory: 1G
command: node server.js
env:
  GREETING: hi
  PORT_HINT: 3000
  DEBUG: false
routes:
  - route: Shop.example.com
  - route: shop.localhost/api
`);
  t.same(m, {
    name: 'shop',
    instances: 2,
    memoryMb: 1024,
    command: 'node server.js',
    env: { GREETING: 'hi', PORT_HINT: '3000', DEBUG: 'false' },
    uris: ['shop.example.com', 'shop.localhost/api'],
  });
});

t.test('applications: the first, or the one --name picks; top-level fields are inherited', async (t) => {
  const text = `
memory: 128M
applications:
  - name: web
    instances: 3
  - name: worker
    memory: 512M
`;
  t.same(parseManifest(text), { name: 'web', instances: 3, memoryMb: 128 });
  t.same(parseManifest(text, 'worker'), { name: 'worker', memoryMb: 512 });
  t.throws(() => parseManifest(text, 'nope'), /no application named "nope"/);
  t.same(parseManifest('applications:\n  - name: web\n', 'renamed'), { name: 'web' }, 'a lone entry is taken; --name then renames it');
});

t.test('host and domain', async (t) => {
  t.same(parseManifest('name: shop\nhost: store\ndomain: example.com\n').uris, ['store.example.com']);
  t.same(parseManifest('name: shop\ndomains: [a.com, b.com]\n').uris, ['shop.a.com', 'shop.b.com']);
  const hostOnly = parseManifest('name: shop\nhosts: [store, www]\n');
  t.equal(hostOnly.uris, undefined);
  t.same(hostOnly.hosts, ['store', 'www']);
});

t.test('session_affinity, top level or per application', async (t) => {
  t.same(parseManifest('name: chat\ninstances: 2\nsession_affinity: true\n'), { name: 'chat', instances: 2, sessionAffinity: true });
  t.same(parseManifest('session_affinity: true\napplications:\n  - name: a\n  - name: b\n    session_affinity: false\n', 'b'), { name: 'b', sessionAffinity: false });
  t.same(parseManifest('session_affinity: true\napplications:\n  - name: a\n'), { name: 'a', sessionAffinity: true }, 'inherited');
  t.throws(() => parseManifest('session_affinity: yes please\n'), /session_affinity must be true or false/);
});

t.test('empty manifest is no settings', async (t) => {
  t.same(parseManifest(''), {});
  t.same(parseManifest('# only a comment\n'), {});
});

t.test('bad manifests name the field', async (t) => {
  t.throws(() => parseManifest('instances: 101\n'), /instances must be a whole number from 0 to 100/);
  t.throws(() => parseManifest('memory: 100G\n'), /manifest.yml: memory must be from 16M to 64G, got "100G"/);
  t.throws(() => parseManifest('memory: 128K\n'), /manifest.yml: memory must be a size like 256M or 1G \(units M, MB, G, GB; no unit: MB\)/);
  t.throws(() => parseManifest('- a\n- b\n'), /must be a mapping/);
  t.throws(() => parseManifest('instances: two\n'), /instances must be a whole number/);
  t.throws(() => parseManifest('instances: -1\n'), /instances must be a whole number/);
  t.throws(() => parseManifest('memory: lots\n'), /manifest.yml: memory must be a size like 256M/);
  t.throws(() => parseManifest('memory: [1]\n'), /memory must be a size like/);
  t.throws(() => parseManifest('env: [A]\n'), /env must be a mapping/);
  t.throws(() => parseManifest('env:\n  1BAD: x\n'), /env name "1BAD"/);
  t.throws(() => parseManifest('env:\n  A: {b: 1}\n'), /env A must be a string/);
  t.throws(() => parseManifest('routes: shop.localhost\n'), /routes must be a list/);
  t.throws(() => parseManifest('routes:\n  - shop.localhost\n'), /routes\[0\] must be/);
  t.throws(() => parseManifest('routes:\n  - route: http://shop.localhost\n'), /manifest.yml: route .* without http/);
  t.throws(() => parseManifest('applications: []\n'), /non-empty list/);
  t.throws(() => parseManifest('name: 5\n'), /name must be a string/);
  t.throws(() => parseManifest('command: [a]\n'), /command must be a string/);
  t.throws(() => parseManifest('host: [a]\n'), /host must be a string/);
  t.throws(() => parseManifest('hosts: a\n'), /hosts must be a list/);
  t.throws(() => parseManifest('domain: example.com\n'), /domain needs a host or a name/);
});

t.test('bad YAML: where, why, and the lines around it', async (t) => {
  t.throws(() => parseManifest('name: [\n'), /^manifest.yml is not valid YAML \(line 2, column 1\): Flow sequence/);
  let message = '';
  try {
    parseManifest('name: shop\nenv:\n  A: 1\n B: 2\n');
  } catch (error) {
    message = (error as Error).message;
  }
  t.equal(
    message,
    'manifest.yml is not valid YAML (line 4, column 1): All mapping items must start at the same column\n    A: 1\n   B: 2\n  ^',
    'first line says where and why; the excerpt points at the spot',
  );
});

t.test('unknown keys are named once each, and otherwise ignored', async (t) => {
  const warnings: string[] = [];
  const m = parseManifest('buildpack: node\napplications:\n- name: web\n  intances: 2\n  memory: 128MB\n- name: other\n  stack: x\n', undefined, (w) => warnings.push(w));
  t.same(m, { name: 'web', memoryMb: 128 });
  t.same(warnings, ['manifest.yml: unknown key "buildpack" (ignored)', 'manifest.yml: applications[0]: unknown key "intances" (ignored)'], 'the entry not pushed is not looked at');
  const none: string[] = [];
  parseManifest('name: a\ninstances: 1\nmemory: 1G\ncommand: x\nenv: {}\nroutes: []\n', undefined, (w) => none.push(w));
  t.same(none, []);
});

t.test('services: names of service instances to bind, as cf manifests give them', async (t) => {
  t.same(parseManifest('name: notes\nservices:\n- notes-db\n- cache\n- notes-db\n'), { name: 'notes', services: ['notes-db', 'cache'] });
  t.same(parseManifest('applications:\n- name: notes\n  services:\n  - name: notes-db\n'), { name: 'notes', services: ['notes-db'] }, 'cf\'s newer `- name:` items');
  t.same(parseManifest('services: [db]\napplications:\n- name: a\n'), { name: 'a', services: ['db'] }, 'a top-level default');
  t.throws(() => parseManifest('services: db\n'), /services must be a list of service names/);
  t.throws(() => parseManifest('services:\n- Notes DB\n'), /services\[0\] must be a service name/);
  t.throws(() => parseManifest('services:\n- type: redis\n'), /services\[0\] must be a service name/, 'push creates no services: a mapping without a name is refused');
});

t.test('autoscale: a policy, checked by the API rules', async (t) => {
  t.same(parseManifest('name: a\nautoscale: {min: 1, max: 4, target_rps: 50}\n').autoscale, { min: 1, max: 4, target_rps: 50 });
  t.throws(() => parseManifest('name: a\nautoscale: {min: 2, max: 1, target_rps: 50}\n'), { message: 'manifest.yml: autoscale.max must be a whole number from min (2) to 100' });
  t.throws(() => parseManifest('name: a\nautoscale: {min: 1, max: 3}\n'), { message: 'manifest.yml: autoscale needs a target: target_rps, target_p99_ms or target_cpu' });
});
