import t from 'tap';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NATS_ROLES, OPERATOR_USER } from '../../bus/permissions';
import { ensureNatsDir, loadOrCreateSecrets, loadSecrets, natsServerConfig, serverUsers } from './nats';

t.test('the first node\'s secrets: every user and the routes, kept, 0600; an older data dir keeps its passwords', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'skiff-secrets-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const dir = ensureNatsDir(dataDir);
  t.equal(statSync(dir).mode & 0o777, 0o700);
  writeFileSync(join(dir, 'dea.json'), JSON.stringify({ user: 'dea', pass: 'an-older-dea-password' }));
  const secrets = loadOrCreateSecrets(dir);
  t.same(Object.keys(secrets.users).sort(), [...NATS_ROLES, OPERATOR_USER].sort());
  t.equal(secrets.users.dea, 'an-older-dea-password', 'roles started with the old file still connect');
  t.ok(secrets.route.pass.length >= 24);
  t.equal(statSync(join(dir, 'secrets.json')).mode & 0o777, 0o600);
  t.same(loadOrCreateSecrets(dir), secrets, 'kept across starts');
  t.same(loadSecrets(dir), secrets);
  t.equal(serverUsers(secrets).find((u) => u.user === OPERATOR_USER)?.permissions, undefined, 'the operator may do everything');
  t.ok(serverUsers(secrets).find((u) => u.user === 'node')?.permissions, 'the node supervisors only their part');
});

t.test('a clustered server: routes with credentials, advertised addresses, no anonymous access', async (t) => {
  const config = natsServerConfig({
    name: 'n1', host: '0.0.0.0', port: 4222, advertise: '10.78.0.1', storeDir: '/var/lib/skiff/nats',
    users: [{ user: 'dea', password: 'p"w', permissions: { publish: ['$JS.API.INFO'], subscribe: ['a.*'] } }],
    cluster: { name: 'skiff', host: '0.0.0.0', port: 6222, route: { user: 'route', pass: 'r/p w' }, routes: ['nats-route://10.78.0.1:6222', 'nats-route://10.78.0.2:6222'] },
  });
  t.match(config, /^server_name: "n1"$/m);
  t.match(config, /^client_advertise: "10.78.0.1:4222"$/m, 'clients are told the control address only');
  t.match(config, /^  advertise: "10.78.0.1:6222"$/m);
  t.match(config, 'routes: ["nats-route://route:r%2Fp%20w@10.78.0.1:6222", "nats-route://route:r%2Fp%20w@10.78.0.2:6222"]');
  t.match(config, 'password: "p\\"w"', 'strings are quoted and escaped');
  t.match(config, 'publish: { allow: ["$JS.API.INFO"] }', 'a $ subject is a string, not a variable');
  t.notMatch(config, /no_auth_user/);
  t.notMatch(natsServerConfig({ host: '127.0.0.1', port: 4222, users: [] }), /cluster|advertise/, 'a node alone has no cluster block');
});
