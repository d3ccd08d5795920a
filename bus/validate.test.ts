import t from 'tap';
import { captureLog, eventually, sleep } from '../test/harness';
import * as v from './validate';
import { decode, RejectionCounter, type Validation, type Validator } from './validate';
import type { DeaFindDropletReply, DeaStop, DropletExited, HmStartRequest, HmStopRequest } from './messages';

type Asserts = Pick<typeof t, 'same'>;

const bytes = (text: string) => new TextEncoder().encode(text);

/** Asserts that the validator accepts `input` and returns exactly `expected`. */
function accepts<T>(t: Asserts, validate: Validator<T>, input: unknown, expected: T, name = 'accepted'): void {
  t.same(validate(input), { ok: true, value: expected }, name);
}

/** Asserts that the validator rejects `input` with exactly `error`. */
function rejects<T>(t: Asserts, validate: Validator<T>, input: unknown, error: string): void {
  t.same(validate(input), { ok: false, error }, error);
}

const register = { host: '127.0.0.1', port: 61001, uris: ['shop.localhost', 'shop.localhost/api'] };

t.test('router.register', async (t) => {
  accepts(t, v.validateRouterRegister, register, register, 'minimal message');
  accepts(t, v.validateRouterRegister, {
    ...register,
    app: 'app-1', private_instance_id: 'inst-1', private_instance_index: '0',
    stale_threshold_in_seconds: 120, tags: { component: 'dea-0' },
    options: { loadbalancing: 'least-connection' }, dea: 'dea-uuid', index: 2,
    unknown_field: { ignored: true },
  }, {
    ...register,
    app: 'app-1', private_instance_id: 'inst-1', private_instance_index: '0',
    stale_threshold_in_seconds: 120, tags: { component: 'dea-0' },
    options: { loadbalancing: 'least-connection' }, dea: 'dea-uuid', index: 2,
  }, 'full message; unknown fields dropped');
  accepts(t, v.validateRouterRegister, { ...register, private_instance_index: 3 }, { ...register, private_instance_index: '3' }, 'numeric index normalised to string');
  accepts(t, v.validateRouterRegister, { ...register, app: 42 }, { ...register, app: '42' }, 'CF v1 numeric app id');
  accepts(t, v.validateRouterRegister, { ...register, tags: null, app: null }, register, 'null optionals are absent');
  t.equal(v.validateRouterUnregister, v.validateRouterRegister, 'unregister has the same shape');

  rejects(t, v.validateRouterRegister, [], 'message must be an object');
  rejects(t, v.validateRouterRegister, null, 'message must be an object');
  rejects(t, v.validateRouterRegister, { ...register, host: '' }, 'host must be a non-empty string');
  rejects(t, v.validateRouterRegister, { ...register, host: undefined }, 'host must be a non-empty string');
  for (const port of [0, 65536, 80.5, '80', null, -1]) {
    rejects(t, v.validateRouterRegister, { ...register, port }, 'port must be an integer 1-65535');
  }
  rejects(t, v.validateRouterRegister, { ...register, uris: [] }, 'uris must be a non-empty array of strings');
  rejects(t, v.validateRouterRegister, { ...register, uris: 'shop.localhost' }, 'uris must be a non-empty array of strings');
  rejects(t, v.validateRouterRegister, { ...register, uris: ['ok', ''] }, 'uris[1] must be a non-empty string');
  rejects(t, v.validateRouterRegister, { ...register, uris: ['ok', 7] }, 'uris[1] must be a non-empty string');
  rejects(t, v.validateRouterRegister, { ...register, stale_threshold_in_seconds: 0 }, 'stale_threshold_in_seconds must be a positive number');
  rejects(t, v.validateRouterRegister, { ...register, stale_threshold_in_seconds: '120' }, 'stale_threshold_in_seconds must be a positive number');
  rejects(t, v.validateRouterRegister, { ...register, private_instance_index: true }, 'private_instance_index must be a string or an integer >= 0');
  rejects(t, v.validateRouterRegister, { ...register, tags: { a: 1 } }, 'tags must be an object of strings');
  rejects(t, v.validateRouterRegister, { ...register, options: 'x' }, 'options must be an object');
  rejects(t, v.validateRouterRegister, { ...register, options: { loadbalancing: 5 } }, 'options.loadbalancing must be a non-empty string');
  accepts(t, v.validateRouterRegister, { ...register, options: { session_affinity: true } }, { ...register, options: { session_affinity: true } }, 'session affinity');
  accepts(t, v.validateRouterRegister, { ...register, options: { session_affinity: null } }, { ...register, options: {} }, 'a null session_affinity is absent');
  rejects(t, v.validateRouterRegister, { ...register, options: { session_affinity: 'yes' } }, 'options.session_affinity must be a boolean');
  rejects(t, v.validateRouterRegister, { ...register, index: -1 }, 'index must be an integer >= 0');
  rejects(t, v.validateRouterRegister, { ...register, app: 1.5 }, 'app must be a non-empty string');

  const sneaky = v.validateRouterRegister(JSON.parse('{"host":"h","port":1,"uris":["u"],"tags":{"__proto__":"x"}}'));
  t.ok(sneaky.ok && Object.getPrototypeOf(sneaky.value.tags) === Object.prototype, 'a __proto__ tag cannot change the prototype');
});

t.test('router.start', async (t) => {
  const start = { id: '0-abc', hosts: ['127.0.0.1'], minimumRegisterIntervalInSeconds: 20, pruneThresholdInSeconds: 120 };
  accepts(t, v.validateRouterStart, start, start);
  accepts(t, v.validateRouterStart, { id: '0-abc', hosts: ['10.0.0.1'] }, { ...start, hosts: ['10.0.0.1'] }, 'CF v1 router.start without intervals: defaults');
  rejects(t, v.validateRouterStart, { ...start, id: 5 }, 'id must be a non-empty string');
  rejects(t, v.validateRouterStart, { ...start, minimumRegisterIntervalInSeconds: -5 }, 'minimumRegisterIntervalInSeconds must be a positive number');
});

t.test('DEA messages', async (t) => {
  const advertise = { id: 'dea-1', available_memory: 3584, runtimes: ['node', 'python'], app_id_to_count: { app: 2 } };
  accepts(t, v.validateDeaAdvertise, advertise, advertise);
  accepts(t, v.validateDeaAdvertise, { id: 'dea-1', available_memory: 0, runtimes: [] }, { id: 'dea-1', available_memory: 0, runtimes: [], app_id_to_count: {} });
  rejects(t, v.validateDeaAdvertise, { ...advertise, available_memory: -1 }, 'available_memory must be a number >= 0');
  rejects(t, v.validateDeaAdvertise, { ...advertise, app_id_to_count: { app: 'two' } }, 'app_id_to_count must be an object of integers >= 0');

  accepts(t, v.validateDeaHello, { id: 'dea-1', ip: '10.0.0.2', port: 1234, version: '0.1' }, { id: 'dea-1', ip: '10.0.0.2', port: 1234, version: '0.1' });
  rejects(t, v.validateDeaHello, {}, 'id must be a non-empty string');

  const droplet = { droplet: 'app', version: 'sha-3', instance: 'inst', index: 0, state: 'RUNNING', state_timestamp: 1764100000 };
  accepts(t, v.validateDeaHeartbeat, { dea: 'dea-1', droplets: [droplet] }, { dea: 'dea-1', droplets: [droplet] });
  accepts(t, v.validateDeaHeartbeat, { dea: 'dea-1', droplets: [] }, { dea: 'dea-1', droplets: [] });
  rejects(t, v.validateDeaHeartbeat, { dea: 'dea-1', droplets: [{ ...droplet, state: 'SLEEPING' }] },
    'droplets[0].state must be one of STARTING, RUNNING, STOPPING, STOPPED, CRASHED, DELETED');
  rejects(t, v.validateDeaHeartbeat, { dea: 'dea-1', droplets: [droplet, 'x'] }, 'droplets[1] must be an object');
  rejects(t, v.validateDeaHeartbeat, { dea: 'dea-1', droplets: [{ ...droplet, index: -1 }] }, 'droplets[0].index must be an integer >= 0');
  rejects(t, v.validateDeaHeartbeat, { dea: 'dea-1' }, 'droplets must be an array of objects');

  const exited: DropletExited = { droplet: 'app', version: 'sha-3', instance: 'inst', index: 0, reason: 'CRASHED', exit_status: 1, crash_timestamp: 1764100100 };
  accepts(t, v.validateDropletExited, exited, exited);
  accepts(t, v.validateDropletExited, { ...exited, exit_status: null, exit_description: 'out of memory' },
    { droplet: 'app', version: 'sha-3', instance: 'inst', index: 0, reason: 'CRASHED', exit_description: 'out of memory', crash_timestamp: 1764100100 },
    'null exit_status (killed by a signal) is absent');
  rejects(t, v.validateDropletExited, { ...exited, reason: 'BORED' }, 'reason must be one of STOPPED, CRASHED, DEA_SHUTDOWN, DEA_EVACUATION');

  const limits = { mem: 256, disk: 1024, fds: 256 };
  const discover = { droplet: 'app', limits, runtime: 'node', sha: 'abc' };
  accepts(t, v.validateDeaDiscover, discover, discover);
  rejects(t, v.validateDeaDiscover, { ...discover, limits: { ...limits, fds: 1.5 } }, 'limits.fds must be an integer >= 0');
  rejects(t, v.validateDeaDiscover, { ...discover, limits: undefined }, 'limits must be an object');
  accepts(t, v.validateDeaDiscoverReply, { id: 'dea-1', ip: '10.0.0.2', port: 1234 }, { id: 'dea-1', ip: '10.0.0.2', port: 1234 });
  rejects(t, v.validateDeaDiscoverReply, { id: 'dea-1', ip: '10.0.0.2' }, 'port must be an integer 1-65535');

  const start = {
    droplet: 'app', index: 0, name: 'shop', uris: ['shop.localhost'], runtime: 'node', sha1: 'sha', version: 'sha-3',
    limits, env: ['KEY=value'], services: [], users: ['owner@example.com'], flapping: false,
  };
  accepts(t, v.validateDeaStartRequest, start, start);
  accepts(t, v.validateDeaStartRequest,
    { droplet: 'app', index: 1, name: 'shop', runtime: 'node', sha1: 'sha', version: 'sha-3', limits, start_command: 'node server.js' },
    { droplet: 'app', index: 1, name: 'shop', uris: [], runtime: 'node', sha1: 'sha', version: 'sha-3', limits, env: [], services: [], users: [], flapping: false, start_command: 'node server.js' },
    'defaults for the optional lists');
  rejects(t, v.validateDeaStartRequest, { ...start, env: { KEY: 'value' } }, 'env must be an array of strings');
  rejects(t, v.validateDeaStartRequest, { ...start, flapping: 'no' }, 'flapping must be a boolean');
  accepts(t, v.validateDeaStartRequest, { ...start, uid: 2000123 }, { ...start, uid: 2000123 }, 'the app\'s uid');
  accepts(t, v.validateDeaStartRequest, { ...start, uid: null }, start, 'a null uid is absent');
  rejects(t, v.validateDeaStartRequest, { ...start, uid: 0 }, 'uid must be an integer 1-2147483646');
  rejects(t, v.validateDeaStartRequest, { ...start, uid: -5 }, 'uid must be an integer 1-2147483646');
  rejects(t, v.validateDeaStartRequest, { ...start, uid: 2.5 }, 'uid must be an integer 1-2147483646');
  rejects(t, v.validateDeaStartRequest, { ...start, uid: '2000000' }, 'uid must be an integer 1-2147483646');
  accepts(t, v.validateDeaStartRequest, { ...start, session_affinity: true }, { ...start, session_affinity: true }, 'session affinity');
  rejects(t, v.validateDeaStartRequest, { ...start, session_affinity: 1 }, 'session_affinity must be a boolean');

  accepts(t, v.validateDeaStop, { droplet: 'app' }, { droplet: 'app' });
  const stop: DeaStop = { droplet: 'app', version: 'sha-3', instances: ['i1'], indices: [1], states: ['RUNNING'] };
  accepts(t, v.validateDeaStop, stop, stop);
  rejects(t, v.validateDeaStop, {}, 'droplet must be a non-empty string');
  rejects(t, v.validateDeaStop, { droplet: 'app', states: ['NAPPING'] }, 'states[0] must be one of STARTING, RUNNING, STOPPING, STOPPED, CRASHED, DELETED');
  rejects(t, v.validateDeaStop, { droplet: 'app', indices: [1, 'x'] }, 'indices[1] must be an integer >= 0');

  accepts(t, v.validateDeaFindDroplet, { ...stop, include_stats: true }, { ...stop, include_stats: true });
  rejects(t, v.validateDeaFindDroplet, { droplet: 'app', include_stats: 'yes' }, 'include_stats must be a boolean');

  const found: DeaFindDropletReply & { stats: NonNullable<DeaFindDropletReply['stats']> } = {
    dea: 'dea-1', droplet: 'app', version: 'sha-3', instance: 'inst', index: 0, state: 'RUNNING', state_timestamp: 1764100000,
    stats: {
      name: 'shop', host: '127.0.0.1', port: 61001, uris: ['shop.localhost'], uptime: 120.5,
      mem_quota: 268435456, disk_quota: 1073741824, fds_quota: 256,
      usage: { cpu: 1.5, mem: 40960, disk: 123456, time: '2026-11-25 10:00:00 +0000' },
    },
  };
  accepts(t, v.validateDeaFindDropletReply, found, found);
  const { stats: _stats, ...withoutStats } = found;
  accepts(t, v.validateDeaFindDropletReply, withoutStats, withoutStats);
  rejects(t, v.validateDeaFindDropletReply, { ...found, stats: { ...found.stats, usage: { ...found.stats.usage, cpu: 'high' } } }, 'stats.usage.cpu must be a number >= 0');

  accepts(t, v.validateDeaUpdate, { droplet: 'app', uris: [] }, { droplet: 'app', uris: [] }, 'an app may lose all its uris');
  rejects(t, v.validateDeaUpdate, { droplet: 'app' }, 'uris must be an array of strings');
  accepts(t, v.validateDeaUpdate, { droplet: 'app', uris: [], session_affinity: false }, { droplet: 'app', uris: [], session_affinity: false }, 'session affinity turned off');
  rejects(t, v.validateDeaUpdate, { droplet: 'app', uris: [], session_affinity: 'on' }, 'session_affinity must be a boolean');
});

t.test('health manager and controller messages', async (t) => {
  const startReq: HmStartRequest = { droplet: 'app', op: 'START', last_updated: 1764100000, version: 'sha-3', indices: [1], flapping: true };
  accepts(t, v.validateHmRequest, startReq, startReq);
  accepts(t, v.validateHmRequest, { ...startReq, flapping: undefined }, { ...startReq, flapping: false });
  const stopReq: HmStopRequest = { droplet: 'app', op: 'STOP', last_updated: 1764100000, instances: ['inst'] };
  accepts(t, v.validateHmRequest, stopReq, stopReq);
  rejects(t, v.validateHmRequest, { ...stopReq, op: 'RESTART' }, 'op must be one of START, STOP');
  rejects(t, v.validateHmRequest, { ...startReq, indices: [] }, 'indices must be a non-empty array of integers');
  rejects(t, v.validateHmRequest, { ...stopReq, instances: undefined }, 'instances must be a non-empty array of strings');

  accepts(t, v.validateHealthmanagerStatusRequest, { droplet: 'app', version: 'v', state: 'FLAPPING' }, { droplet: 'app', version: 'v', state: 'FLAPPING' });
  accepts(t, v.validateHealthmanagerStatusRequest, { droplet: 'app', state: 'CRASHED', version: 'ignored' }, { droplet: 'app', state: 'CRASHED' });
  rejects(t, v.validateHealthmanagerStatusRequest, { droplet: 'app', state: 'FLAPPING' }, 'version must be a non-empty string');
  accepts(t, v.validateHmFlappingStatusReply, { indices: [{ index: 1, since: 1764100000 }] }, { indices: [{ index: 1, since: 1764100000 }] });
  rejects(t, v.validateHmFlappingStatusReply, { indices: [{ index: 1 }] }, 'indices[0].since must be a number >= 0');
  accepts(t, v.validateHmCrashedStatusReply, { instances: [{ instance: 'i', since: 1 }] }, { instances: [{ instance: 'i', since: 1 }] });
  rejects(t, v.validateHmCrashedStatusReply, { instances: [{ since: 1 }] }, 'instances[0].instance must be a non-empty string');

  accepts(t, v.validateHealthmanagerHealthRequest, { droplets: [{ droplet: 'app', version: 'v' }] }, { droplets: [{ droplet: 'app', version: 'v' }] });
  rejects(t, v.validateHealthmanagerHealthRequest, { droplets: [{ droplet: 'app' }] }, 'droplets[0].version must be a non-empty string');
  accepts(t, v.validateHealthmanagerHealthReply, { droplet: 'app', version: 'v', healthy: 2 }, { droplet: 'app', version: 'v', healthy: 2 });
  rejects(t, v.validateHealthmanagerHealthReply, { droplet: 'app', version: 'v', healthy: -1 }, 'healthy must be an integer >= 0');

  accepts(t, v.validateHealthmanagerHello, {}, {});
  accepts(t, v.validateDropletUpdated, { droplet: 'app' }, { droplet: 'app' });
  rejects(t, v.validateDropletUpdated, { app: 'app' }, 'droplet must be a non-empty string');

  const giveUp = { droplet: 'app', version: 'v-1', index: 0, crashes: 5 };
  accepts(t, v.validateHmGiveUp, { ...giveUp, extra: true }, giveUp);
  rejects(t, v.validateHmGiveUp, { ...giveUp, index: -1 }, 'index must be an integer >= 0');
  rejects(t, v.validateHmGiveUp, { droplet: 'app', index: 0, crashes: 5 }, 'version must be a non-empty string');
});

t.test('stager and component messages', async (t) => {
  const request = { app: 'app', bits: 'pkg-1', sha: 'abc', manifest: { command: null, env: { A: '1' } } };
  accepts(t, v.validateStagerRequest, request, request);
  accepts(t, v.validateStagerRequest, { app: 'app', bits: 'pkg-1', sha: 'abc' }, { ...request, manifest: { command: null, env: {} } }, 'manifest defaults');
  accepts(t, v.validateStagerRequest, { ...request, manifest: { command: 'node x.js' } }, { ...request, manifest: { command: 'node x.js', env: {} } });
  rejects(t, v.validateStagerRequest, { ...request, manifest: { command: 5 } }, 'manifest.command must be a string or null');
  rejects(t, v.validateStagerRequest, { ...request, manifest: { env: { A: 1 } } }, 'manifest.env must be an object of strings');

  const success = { droplet: 'drop-1', sha1: 'd', runtime: 'node', framework: 'node', start_command: 'node server.js', log: 'ok' };
  accepts(t, v.validateStagerReply, success, success);
  accepts(t, v.validateStagerReply, { error: 'no start command found' }, { error: 'no start command found', log: '' });
  rejects(t, v.validateStagerReply, { ...success, start_command: undefined }, 'start_command must be a non-empty string');
  rejects(t, v.validateStagerReply, { error: '' }, 'error must be a non-empty string');

  const announce = { type: 'Router', index: 0, uuid: '0-x', host: '127.0.0.1:8081', credentials: ['u', 'p'] as [string, string], start: '2026-11-25T10:00:00Z', uptime: '0d:0h:5m:3s' };
  accepts(t, v.validateComponentAnnounce, announce, announce);
  rejects(t, v.validateComponentAnnounce, { ...announce, credentials: ['u'] }, 'credentials must be an array of 2 strings');
  const { credentials: _, ...dea } = { ...announce, type: 'DEA', node: 'n1' };
  accepts(t, v.validateComponentAnnounce, dea, dea, 'only the router has credentials');
  const node = { ...dea, type: 'Node', roles: ['dea', 'router'] };
  accepts(t, v.validateComponentAnnounce, node, node, 'a node supervisor lists its roles');
  rejects(t, v.validateComponentAnnounce, { ...node, roles: 'dea' }, 'roles must be an array of non-empty strings');
});

t.test('decode', async (t) => {
  t.same(decode(bytes(JSON.stringify(register)), v.validateRouterRegister), { ok: true, value: register });
  const broken = decode(bytes('{"host":"h","password":"hunter2"'), v.validateRouterRegister) as Extract<Validation<unknown>, { ok: false }>;
  t.equal(broken.ok, false);
  t.match(broken.error, /^not JSON: /);
  const secretToken = decode(bytes('hunter2 is my password'), v.validateRouterRegister) as Extract<Validation<unknown>, { ok: false }>;
  t.match(secretToken.error, /^not JSON: /);
  t.notMatch(secretToken.error, /hunter2|password/, 'the JSON error does not quote the body');
  t.same(decode(bytes('[1]'), v.validateRouterRegister), { ok: false, error: 'message must be an object' });
  t.same(decode(bytes(''), v.validateRouterRegister), { ok: false, error: 'empty message' });
  t.same(decode(bytes('  \n'), v.validateHealthmanagerHello), { ok: true, value: {} }, 'empty hello is fine');
  t.same(decode(new Uint8Array([0x7b, 0xff, 0x7d]), v.validateRouterRegister), { ok: false, error: 'not UTF-8' });
});

t.test('RejectionCounter counts every rejection', async (t) => {
  const { logger } = captureLog();
  const counter = new RejectionCounter(logger);
  t.equal(counter.total, 0);
  counter.reject('router.register', 'port must be an integer 1-65535');
  counter.reject('router.register', 'host must be a non-empty string');
  counter.reject('dea.heartbeat', 'not JSON: Unexpected end of JSON input');
  t.equal(counter.total, 3);
  t.same(counter.bySubject(), { 'router.register': 2, 'dea.heartbeat': 1 });
});

t.test('RejectionCounter logs at most one line per subject per interval', async (t) => {
  const { logger, lines } = captureLog('router');
  const counter = new RejectionCounter(logger, { intervalMs: 400 });
  for (let i = 0; i < 1000; i++) counter.reject('router.register', i === 999 ? 'uris must be a non-empty array of strings' : 'port must be an integer 1-65535');
  counter.reject('router.unregister', 'host must be a non-empty string');
  t.equal(lines.length, 2, 'a flood gives one line per subject');
  t.match(lines[0], /WARN router: rejected message subject=router.register error="port must be an integer 1-65535" rejected=1$/);
  t.match(lines[1], /subject=router.unregister error="host must be a non-empty string" rejected=1$/);

  await sleep(100);
  t.equal(lines.length, 2, 'nothing more inside the interval');
  await eventually(() => lines.length === 3, 'summary at the end of the interval', 2000);
  t.match(lines[2], /subject=router.register error="uris must be a non-empty array of strings" rejected=1000 suppressed=999$/,
    'the summary carries the latest error and the suppressed count');

  await sleep(500);
  t.equal(lines.length, 3, 'no summary when nothing was suppressed');
  counter.reject('router.register', 'port must be an integer 1-65535');
  t.equal(lines.length, 4, 'after a quiet interval the next rejection logs at once');
  t.match(lines[3], /rejected=1001$/);
  t.equal(counter.total, 1002);
});

t.test('router.app_stats and dea.stats', async (t) => {
  const counts = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  const stats = {
    router: 'r-1', host: '10.0.0.1:8081', started: 1, ts: 2, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    apps: { shop: { codes: { '200': 1 }, latency: { counts, sum: 0.001, count: 1 } } },
  };
  accepts(t, v.validateRouterAppStats, { ...stats, extra: 1 }, stats, 'unknown fields dropped');
  rejects(t, v.validateRouterAppStats, { ...stats, apps: { shop: { codes: { ok: 1 }, latency: { counts, sum: 0, count: 1 } } } }, 'apps.shop.codes keys must be 3-digit status codes');
  rejects(t, v.validateRouterAppStats, { ...stats, apps: { shop: { codes: {}, latency: { counts: [1], sum: 0, count: 1 } } } }, 'apps.shop.latency.counts must have one count per bucket and +Inf');
  rejects(t, v.validateRouterAppStats, { ...stats, buckets: [1, 0.5] }, 'buckets must be increasing');
  rejects(t, v.validateRouterAppStats, { ...stats, apps: [] }, 'apps must be an object');
  const dea = {
    dea: 'd-1', node: 'n1', ts: 5, memory: { total_mb: 4096, reserved_mb: 256 },
    instances: [{ app: 'shop', version: 'v1', instance: 'i1', index: 0, state: 'RUNNING' as const, cpu: 12.5, mem_kb: 2048, disk_bytes: 4096 }],
  };
  accepts(t, v.validateDeaStats, dea, dea);
  rejects(t, v.validateDeaStats, { ...dea, instances: [{ ...dea.instances[0], cpu: -1 }] }, 'instances[0].cpu must be a number >= 0');
  rejects(t, v.validateDeaStats, { ...dea, memory: null }, 'memory must be an object');
});
