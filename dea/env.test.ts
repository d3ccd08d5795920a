import t from 'tap';
import { buildInstanceEnv, DEFAULT_PATH, formatCfTime, groupServices, serviceUrls, type InstanceEnvInput } from './env';

const input: InstanceEnvInput = {
  appId: 'app-1',
  name: 'shop',
  instanceId: 'inst-1',
  index: 2,
  version: 'abc-1',
  uris: ['shop.localhost'],
  limits: { mem: 256, disk: 1024, fds: 256 },
  host: '127.0.0.1',
  port: 61005,
  startedAt: 1764100000,
  instanceDir: '/data/instances/inst-1',
  tmpDir: '/data/instances/inst-1/tmp',
  appEnv: ['GREETING=hello=world', 'PORT=1', 'PATH=/opt/bin', 'bad name=x', 'NOEQUALS', '=empty'],
  services: [],
};

t.test('exactly the documented variables plus the app env', async (t) => {
  const { env, skipped } = buildInstanceEnv(input);
  t.same(Object.keys(env).sort(), [
    'CF_INSTANCE_INDEX', 'GREETING', 'HOME', 'LANG', 'PATH', 'PORT', 'TMPDIR',
    'VCAP_APPLICATION', 'VCAP_APP_HOST', 'VCAP_APP_PORT', 'VCAP_SERVICES', 'npm_config_update_notifier',
  ]);
  t.equal(env.PORT, '61005');
  t.equal(env.VCAP_APP_PORT, '61005');
  t.equal(env.CF_INSTANCE_INDEX, '2');
  t.equal(env.GREETING, 'hello=world', 'only the first = splits');
  t.equal(env.PATH, '/opt/bin', 'an app may choose its PATH');
  t.equal(env.VCAP_SERVICES, '{}');
  t.same(skipped, ['PORT', '#3', '#4', '#5'], 'platform-owned and malformed entries are skipped, named without values');
  const app = JSON.parse(env.VCAP_APPLICATION!);
  t.match(app, {
    name: 'shop', uris: ['shop.localhost'], instance_id: 'inst-1', instance_index: 2, version: 'abc-1',
    limits: { mem: 256, disk: 1024, fds: 256 }, started_at: '2025-11-25 19:46:40 +0000',
    application_id: 'app-1', application_name: 'shop', application_uris: ['shop.localhost'],
  });
});

t.test('defaults and services', async (t) => {
  const { env } = buildInstanceEnv({ ...input, appEnv: [], services: [{ label: 'redis', name: 'r1' }, { name: 'x' }] });
  t.equal(env.PATH, `/data/instances/inst-1/app/node_modules/.bin:${DEFAULT_PATH}`, 'the app\'s own tools first, as npm gives them to scripts');
  t.equal(env.npm_config_update_notifier, 'false', 'no npm update notice in the app\'s logs');
  t.same(JSON.parse(env.VCAP_SERVICES!), { redis: [{ label: 'redis', name: 'r1' }], 'user-provided': [{ name: 'x' }] });
  t.same(groupServices([]), {});
  t.equal(formatCfTime(new Date(Date.UTC(2026, 10, 25, 10, 0, 0, 123))), '2026-11-25 10:00:00 +0000');
});

t.test('bound services: VCAP_SERVICES without gids, DATABASE_URL and REDIS_URL when one of the kind is bound', async (t) => {
  const pg = { name: 'db', label: 'postgresql', plan: 'free', tags: ['postgresql'], credentials: { uri: 'postgres://u:pw@127.0.0.1:5432/d', password: 'pw' } };
  const redis = { name: 'cache', label: 'redis', plan: 'free', tags: ['redis'], credentials: { uri: 'redis://:pw@127.0.0.1:6380', password: 'pw' } };
  const fs = { name: 'files', label: 'filesystem', plan: 'free', tags: ['filesystem'], credentials: { dir: '/srv/files' }, gid: 2200001 };
  const { env } = buildInstanceEnv({ ...input, appEnv: ['DATABASE_URL=postgres://elsewhere/x', 'REDIS_URL=redis://elsewhere'], services: [pg, redis, fs] });
  const vcap = JSON.parse(env.VCAP_SERVICES!);
  t.same(Object.keys(vcap).sort(), ['filesystem', 'postgresql', 'redis']);
  t.same(vcap.filesystem, [{ name: 'files', label: 'filesystem', plan: 'free', tags: ['filesystem'], credentials: { dir: '/srv/files' } }], 'the gid is not the app\'s to see');
  t.same(vcap.postgresql, [pg]);
  t.equal(env.DATABASE_URL, pg.credentials.uri, 'DATABASE_URL: the bound database wins over the app\'s own env');
  t.equal(env.REDIS_URL, redis.credentials.uri);

  const two = buildInstanceEnv({ ...input, appEnv: [], services: [pg, { ...pg, name: 'db2' }, redis] }).env;
  t.notOk('DATABASE_URL' in two, 'two databases: no DATABASE_URL, the app picks from VCAP_SERVICES');
  t.equal(two.REDIS_URL, redis.credentials.uri);
  t.equal(JSON.parse(two.VCAP_SERVICES!).postgresql.length, 2);

  const kept = buildInstanceEnv({ ...input, appEnv: ['DATABASE_URL=postgres://elsewhere/x'], services: [] }).env;
  t.equal(kept.DATABASE_URL, 'postgres://elsewhere/x', 'nothing bound: the app\'s own DATABASE_URL stays');
  t.same(serviceUrls([{ label: 'redis', credentials: {} }, { label: 'postgresql', credentials: { uri: 7 } }]), {}, 'no uri, no variable');
});
