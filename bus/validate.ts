// Hand-written validators for the bus messages. Each returns a fresh object
// holding only the known fields (so unknown fields are ignored and never
// passed along), with the documented defaults filled in. Errors name the field
// and the rule but never echo the value: messages may carry secrets and the
// errors end up in logs.

import type { AutoscaleRequest } from './autoscale';
import type { Logger } from './log';
import {
  EXIT_REASONS,
  INSTANCE_STATES,
  type ComponentAnnounce,
  type DeaAdvertise,
  type DeaDiscover,
  type DeaDiscoverReply,
  type DeaFindDroplet,
  type DeaFindDropletReply,
  type DeaHeartbeat,
  type DeaHello,
  type DeaStartRequest,
  type DeaStats,
  type DeaStatsInstance,
  type AppTraffic,
  type RouterAppStats,
  type DeaStop,
  type DeaUpdate,
  type DropletExited,
  type DropletUpdated,
  type HealthmanagerHealthReply,
  type HealthmanagerHealthRequest,
  type HealthmanagerHello,
  type HealthmanagerStatusRequest,
  type HeartbeatDroplet,
  type HmCrashedStatusReply,
  type HmFlappingStatusReply,
  type HmRequest,
  type InstanceStats,
  type Limits,
  type RouterRegister,
  type RouterStart,
  type ServiceBinding,
  type StagerReply,
  type StagerRequest,
} from './messages';
import {
  SERVICE_ERROR_CODES, SERVICE_INSTANCE_ID, SSH_MAX_COMMAND, SSH_MAX_TERMINAL, SSH_SESSION_ID,
  type HmGiveUp, type ServiceBindReply, type ServiceBindRequest, type ServiceDeprovisionRequest, type ServiceError,
  type ServiceOfferingsReply, type ServiceOk, type ServiceProvisionReply, type ServiceProvisionRequest,
  type ServiceStatusReply, type ServiceStatusRequest, type ServiceUnbindRequest,
  type SshControl, type SshExit, type SshReply, type SshRequest,
} from './platform';

export type Validation<T> = { ok: true; value: T } | { ok: false; error: string };
export type Validator<T> = (value: unknown) => Validation<T>;

class Invalid extends Error {}

function fail(message: string): never {
  throw new Invalid(message);
}

function validator<T>(read: (message: Fields) => T): Validator<T> {
  return (value) => {
    try {
      return { ok: true, value: read(Fields.of(value, 'message')) };
    } catch (err) {
      if (err instanceof Invalid) return { ok: false, error: err.message };
      throw err;
    }
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Drops keys whose value is undefined, so optional fields are absent rather than present-but-undefined. */
function compact<T extends object>(value: T): T {
  for (const key of Object.keys(value) as Array<keyof T>) {
    if (value[key] === undefined) delete value[key];
  }
  return value;
}

/**
 * Typed access to one object's fields. `opt*` readers treat null like absence,
 * because Ruby and Go senders write null for unset optional fields.
 */
class Fields {
  private constructor(
    private readonly obj: Record<string, unknown>,
    private readonly prefix: string,
  ) {}

  static of(value: unknown, name: string): Fields {
    if (!isPlainObject(value)) fail(`${name} must be an object`);
    return new Fields(value, name === 'message' ? '' : `${name}.`);
  }

  private name(key: string): string {
    return this.prefix + key;
  }

  private present(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  raw(key: string): unknown {
    return this.obj[key];
  }

  string(key: string): string {
    const v = this.obj[key];
    if (typeof v !== 'string' || v === '') fail(`${this.name(key)} must be a non-empty string`);
    return v;
  }

  optString(key: string): string | undefined {
    return this.present(key) ? this.string(key) : undefined;
  }

  /** A string that may be empty, e.g. a log; defaults to "" when absent. */
  text(key: string): string {
    if (!this.present(key)) return '';
    const v = this.obj[key];
    if (typeof v !== 'string') fail(`${this.name(key)} must be a string`);
    return v;
  }

  /** App ids were integers in CF v1; accept both and keep strings. */
  id(key: string): string {
    const v = this.obj[key];
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v);
    if (typeof v !== 'string' || v === '') fail(`${this.name(key)} must be a non-empty string`);
    return v;
  }

  optId(key: string): string | undefined {
    return this.present(key) ? this.id(key) : undefined;
  }

  int(key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      fail(max === Number.MAX_SAFE_INTEGER
        ? `${this.name(key)} must be an integer >= ${min}`
        : `${this.name(key)} must be an integer ${min}-${max}`);
    }
    return v;
  }

  optInt(key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
    return this.present(key) ? this.int(key, min, max) : undefined;
  }

  port(key: string): number {
    return this.int(key, 1, 65535);
  }

  /** A finite number >= 0 (memory, timestamps, uptime, percentages). */
  amount(key: string): number {
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(`${this.name(key)} must be a number >= 0`);
    return v;
  }

  optAmount(key: string): number | undefined {
    return this.present(key) ? this.amount(key) : undefined;
  }

  optPositive(key: string): number | undefined {
    if (!this.present(key)) return undefined;
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`${this.name(key)} must be a positive number`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    if (!this.present(key)) return fallback;
    const v = this.obj[key];
    if (typeof v !== 'boolean') fail(`${this.name(key)} must be a boolean`);
    return v;
  }

  optBool(key: string): boolean | undefined {
    return this.present(key) ? this.bool(key, false) : undefined;
  }

  oneOf<const V extends string>(key: string, values: readonly V[]): V {
    const v = this.obj[key];
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      fail(`${this.name(key)} must be one of ${values.join(', ')}`);
    }
    return v as V;
  }

  object(key: string): Fields {
    return Fields.of(this.obj[key], this.name(key));
  }

  optObject(key: string): Fields | undefined {
    return this.present(key) ? this.object(key) : undefined;
  }

  array<T>(key: string, readItem: (item: unknown, name: string) => T, opts: { nonEmpty?: boolean; what?: string } = {}): T[] {
    const v = this.obj[key];
    if (!Array.isArray(v) || (opts.nonEmpty && v.length === 0)) {
      fail(`${this.name(key)} must be ${opts.nonEmpty ? 'a non-empty' : 'an'} array of ${opts.what ?? 'items'}`);
    }
    return v.map((item, i) => readItem(item, `${this.name(key)}[${i}]`));
  }

  /** An array that defaults to [] when absent. */
  list<T>(key: string, readItem: (item: unknown, name: string) => T, what: string): T[] {
    return this.present(key) ? this.array(key, readItem, { what }) : [];
  }

  optList<T>(key: string, readItem: (item: unknown, name: string) => T, what: string): T[] | undefined {
    return this.present(key) ? this.array(key, readItem, { what }) : undefined;
  }

  stringMap(key: string): Record<string, string> {
    const o = this.obj[key];
    if (!isPlainObject(o) || !Object.values(o).every((v) => typeof v === 'string')) {
      fail(`${this.name(key)} must be an object of strings`);
    }
    // fromEntries defines own properties, so a "__proto__" key stays a plain key.
    return Object.fromEntries(Object.entries(o)) as Record<string, string>;
  }

  optStringMap(key: string): Record<string, string> | undefined {
    return this.present(key) ? this.stringMap(key) : undefined;
  }

  /** Any JSON object, copied (e.g. service credentials, whose fields depend on the service). */
  plainObject(key: string): Record<string, unknown> {
    const o = this.obj[key];
    if (!isPlainObject(o)) fail(`${this.name(key)} must be an object`);
    return Object.fromEntries(Object.entries(o));
  }

  countMap(key: string): Record<string, number> {
    const o = this.obj[key];
    if (!isPlainObject(o) || !Object.values(o).every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0)) {
      fail(`${this.name(key)} must be an object of integers >= 0`);
    }
    return Object.fromEntries(Object.entries(o)) as Record<string, number>;
  }
}

const nonEmptyString = (item: unknown, name: string): string => {
  if (typeof item !== 'string' || item === '') fail(`${name} must be a non-empty string`);
  return item;
};

const anyString = (item: unknown, name: string): string => {
  if (typeof item !== 'string') fail(`${name} must be a string`);
  return item;
};

const index = (item: unknown, name: string): number => {
  if (typeof item !== 'number' || !Number.isInteger(item) || item < 0) fail(`${name} must be an integer >= 0`);
  return item;
};

const instanceState = (item: unknown, name: string) => {
  if (typeof item !== 'string' || !(INSTANCE_STATES as readonly string[]).includes(item)) {
    fail(`${name} must be one of ${INSTANCE_STATES.join(', ')}`);
  }
  return item as (typeof INSTANCE_STATES)[number];
};

function readLimits(f: Fields): Limits {
  return { mem: f.amount('mem'), disk: f.amount('disk'), fds: f.int('fds') };
}

// ---- router ----

export const validateRouterRegister = validator((m): RouterRegister => {
  const options = m.optObject('options');
  return compact({
    host: m.string('host'),
    port: m.port('port'),
    uris: m.array('uris', nonEmptyString, { nonEmpty: true, what: 'strings' }),
    app: m.optId('app'),
    private_instance_id: m.optString('private_instance_id'),
    private_instance_index: privateInstanceIndex(m),
    stale_threshold_in_seconds: m.optPositive('stale_threshold_in_seconds'),
    tags: m.optStringMap('tags'),
    options: options && compact({ loadbalancing: options.optString('loadbalancing'), session_affinity: options.optBool('session_affinity') }),
    dea: m.optString('dea'),
    index: m.optInt('index'),
  });
});

function privateInstanceIndex(m: Fields): string | undefined {
  const v = m.raw('private_instance_index');
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return String(v);
  if (typeof v === 'string') return v;
  return fail('private_instance_index must be a string or an integer >= 0');
}

export const validateRouterUnregister = validateRouterRegister;

export const validateRouterStart = validator((m): RouterStart => ({
  id: m.string('id'),
  hosts: m.list('hosts', nonEmptyString, 'strings'),
  minimumRegisterIntervalInSeconds: m.optPositive('minimumRegisterIntervalInSeconds') ?? 20,
  pruneThresholdInSeconds: m.optPositive('pruneThresholdInSeconds') ?? 120,
}));

/** At most this many apps in one router.app_stats (the router sends 1000 and `_other`). */
const MAX_APP_STATS_APPS = 5000;

function readAppTraffic(item: unknown, name: string, buckets: number): AppTraffic {
  const a = Fields.of(item, name);
  const codes = a.countMap('codes');
  for (const code of Object.keys(codes)) if (!/^[0-9]{3}$/.test(code)) fail(`${name}.codes keys must be 3-digit status codes`);
  const l = a.object('latency');
  const counts = l.array('counts', (c, n) => {
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 0) fail(`${n} must be an integer >= 0`);
    return c;
  }, { what: 'integers' });
  if (counts.length !== buckets + 1) fail(`${name}.latency.counts must have one count per bucket and +Inf`);
  return { codes, latency: { counts, sum: l.amount('sum'), count: l.int('count') } };
}

export const validateRouterAppStats = validator((m): RouterAppStats => {
  const buckets = m.array('buckets', (b, n) => {
    if (typeof b !== 'number' || !Number.isFinite(b) || b <= 0) fail(`${n} must be a positive number`);
    return b;
  }, { nonEmpty: true, what: 'numbers' });
  for (let i = 1; i < buckets.length; i++) if (buckets[i]! <= buckets[i - 1]!) fail('buckets must be increasing');
  const raw = m.raw('apps');
  if (!isPlainObject(raw)) fail('apps must be an object');
  const keys = Object.keys(raw);
  if (keys.length > MAX_APP_STATS_APPS) fail(`apps must hold at most ${MAX_APP_STATS_APPS} apps`);
  const apps: Record<string, AppTraffic> = {};
  const fields = m.object('apps');
  for (const app of keys) {
    if (app === '' || app === '__proto__') fail('apps keys must be app ids');
    apps[app] = readAppTraffic(fields.raw(app), `apps.${app.slice(0, 40)}`, buckets.length);
  }
  return {
    router: m.string('router'),
    host: m.string('host'),
    started: m.amount('started'),
    ts: m.amount('ts'),
    buckets,
    apps,
  };
});

// ---- DEA ----

export const validateDeaAdvertise = validator((m): DeaAdvertise => ({
  id: m.string('id'),
  available_memory: m.amount('available_memory'),
  runtimes: m.list('runtimes', nonEmptyString, 'strings'),
  app_id_to_count: m.optObject('app_id_to_count') ? m.countMap('app_id_to_count') : {},
}));

export const validateDeaHello = validator((m): DeaHello => compact({
  id: m.string('id'),
  ip: m.optString('ip'),
  port: m.optInt('port', 1, 65535),
  version: m.optString('version'),
}));

function readHeartbeatDroplet(item: unknown, name: string): HeartbeatDroplet {
  const d = Fields.of(item, name);
  return {
    droplet: d.id('droplet'),
    version: d.string('version'),
    instance: d.string('instance'),
    index: d.int('index'),
    state: d.oneOf('state', INSTANCE_STATES),
    state_timestamp: d.amount('state_timestamp'),
  };
}

export const validateDeaHeartbeat = validator((m): DeaHeartbeat => ({
  dea: m.string('dea'),
  droplets: m.array('droplets', readHeartbeatDroplet, { what: 'objects' }),
}));

export const validateDropletExited = validator((m): DropletExited => compact({
  droplet: m.id('droplet'),
  version: m.string('version'),
  instance: m.string('instance'),
  index: m.int('index'),
  reason: m.oneOf('reason', EXIT_REASONS),
  exit_status: m.optInt('exit_status', -2147483648, 2147483647),
  exit_description: m.optString('exit_description'),
  crash_timestamp: m.optAmount('crash_timestamp'),
}));

export const validateDeaDiscover = validator((m): DeaDiscover => ({
  droplet: m.id('droplet'),
  limits: readLimits(m.object('limits')),
  runtime: m.string('runtime'),
  sha: m.string('sha'),
}));

export const validateDeaDiscoverReply = validator((m): DeaDiscoverReply => ({
  id: m.string('id'),
  ip: m.string('ip'),
  port: m.port('port'),
}));

export const validateDeaStartRequest = validator((m): DeaStartRequest => compact({
  droplet: m.id('droplet'),
  index: m.int('index'),
  name: m.string('name'),
  uris: m.list('uris', nonEmptyString, 'strings'),
  runtime: m.string('runtime'),
  sha1: m.string('sha1'),
  version: m.string('version'),
  limits: readLimits(m.object('limits')),
  env: m.list('env', anyString, 'strings'),
  services: m.list('services', readServiceBinding, 'objects'),
  users: m.list('users', nonEmptyString, 'strings'),
  flapping: m.bool('flapping', false),
  start_command: m.optString('start_command'),
  droplet_object: m.optString('droplet_object'),
  // Never 0 (root); the DEA checks it against its own --app-uids range.
  uid: m.optInt('uid', 1, 2_147_483_646),
  session_affinity: m.optBool('session_affinity'),
}));

function readServiceBinding(item: unknown, name: string): ServiceBinding {
  const b = Fields.of(item, name);
  return compact({
    name: b.string('name'),
    label: b.string('label'),
    plan: b.string('plan'),
    tags: b.list('tags', nonEmptyString, 'strings'),
    credentials: b.plainObject('credentials'),
    gid: b.optInt('gid', 1, 2_147_483_646),
  });
}

function readStopFilters(m: Fields): DeaStop {
  return compact({
    droplet: m.id('droplet'),
    version: m.optString('version'),
    instances: m.optList('instances', nonEmptyString, 'strings'),
    indices: m.optList('indices', index, 'integers'),
    states: m.optList('states', instanceState, 'states'),
  });
}

export const validateDeaStop = validator(readStopFilters);

export const validateDeaFindDroplet = validator((m): DeaFindDroplet => compact({
  ...readStopFilters(m),
  include_stats: m.optBool('include_stats'),
}));

function readStats(s: Fields): InstanceStats {
  const usage = s.object('usage');
  return {
    name: s.string('name'),
    host: s.string('host'),
    port: s.port('port'),
    uris: s.list('uris', nonEmptyString, 'strings'),
    uptime: s.amount('uptime'),
    mem_quota: s.amount('mem_quota'),
    disk_quota: s.amount('disk_quota'),
    fds_quota: s.amount('fds_quota'),
    usage: { cpu: usage.amount('cpu'), mem: usage.amount('mem'), disk: usage.amount('disk'), time: usage.text('time') },
  };
}

export const validateDeaFindDropletReply = validator((m): DeaFindDropletReply => {
  const stats = m.optObject('stats');
  return compact({
    dea: m.string('dea'),
    droplet: m.id('droplet'),
    version: m.string('version'),
    instance: m.string('instance'),
    index: m.int('index'),
    state: m.oneOf('state', INSTANCE_STATES),
    state_timestamp: m.amount('state_timestamp'),
    stats: stats && readStats(stats),
  });
});

export const validateDeaUpdate = validator((m): DeaUpdate => compact({
  droplet: m.id('droplet'),
  uris: m.array('uris', nonEmptyString, { what: 'strings' }),
  session_affinity: m.optBool('session_affinity'),
}));

// ---- health manager and controller ----

export const validateHmRequest = validator((m): HmRequest => {
  const op = m.oneOf('op', ['START', 'STOP'] as const);
  if (op === 'START') {
    return {
      droplet: m.id('droplet'),
      op,
      last_updated: m.amount('last_updated'),
      version: m.string('version'),
      indices: m.array('indices', index, { nonEmpty: true, what: 'integers' }),
      flapping: m.bool('flapping', false),
    };
  }
  return {
    droplet: m.id('droplet'),
    op,
    last_updated: m.amount('last_updated'),
    instances: m.array('instances', nonEmptyString, { nonEmpty: true, what: 'strings' }),
  };
});

export const validateHealthmanagerStatusRequest = validator((m): HealthmanagerStatusRequest => {
  const state = m.oneOf('state', ['FLAPPING', 'CRASHED'] as const);
  return state === 'FLAPPING'
    ? { droplet: m.id('droplet'), version: m.string('version'), state }
    : { droplet: m.id('droplet'), state };
});

export const validateHmFlappingStatusReply = validator((m): HmFlappingStatusReply => ({
  indices: m.array('indices', (item, name) => {
    const e = Fields.of(item, name);
    return { index: e.int('index'), since: e.amount('since') };
  }, { what: 'objects' }),
}));

export const validateHmCrashedStatusReply = validator((m): HmCrashedStatusReply => ({
  instances: m.array('instances', (item, name) => {
    const e = Fields.of(item, name);
    return { instance: e.string('instance'), since: e.amount('since') };
  }, { what: 'objects' }),
}));

export const validateHealthmanagerHealthRequest = validator((m): HealthmanagerHealthRequest => ({
  droplets: m.array('droplets', (item, name) => {
    const d = Fields.of(item, name);
    return { droplet: d.id('droplet'), version: d.string('version') };
  }, { what: 'objects' }),
}));

export const validateHealthmanagerHealthReply = validator((m): HealthmanagerHealthReply => ({
  droplet: m.id('droplet'),
  version: m.string('version'),
  healthy: m.int('healthy'),
}));

export const validateHealthmanagerHello = validator((): HealthmanagerHello => ({}));

export const validateDropletUpdated = validator((m): DropletUpdated => ({ droplet: m.id('droplet') }));

export const validateHmGiveUp = validator((m): HmGiveUp => ({
  droplet: m.id('droplet'),
  version: m.string('version'),
  index: m.int('index'),
  crashes: m.int('crashes'),
}));

export const validateAutoscaleRequest = validator((m): AutoscaleRequest => ({
  droplet: m.id('droplet'),
  from: m.int('from'),
  to: m.int('to'),
  reason: m.string('reason'),
}));

// ---- stager ----

export const validateStagerRequest = validator((m): StagerRequest => {
  const manifest = m.optObject('manifest');
  const command = manifest?.raw('command');
  if (command !== undefined && command !== null && typeof command !== 'string') fail('manifest.command must be a string or null');
  return {
    app: m.id('app'),
    bits: m.string('bits'),
    sha: m.string('sha'),
    manifest: {
      command: typeof command === 'string' && command !== '' ? command : null,
      env: manifest?.optStringMap('env') ?? {},
    },
  };
});

export const validateStagerReply = validator((m): StagerReply => {
  if (m.raw('error') !== undefined && m.raw('error') !== null) {
    return { error: m.string('error'), log: m.text('log') };
  }
  return {
    droplet: m.string('droplet'),
    sha1: m.string('sha1'),
    runtime: m.string('runtime'),
    framework: m.string('framework'),
    start_command: m.string('start_command'),
    log: m.text('log'),
  };
});

// ---- ssh sessions (bus/platform.ts) ----

function sessionId(m: Fields): string {
  const session = m.string('session');
  if (!SSH_SESSION_ID.test(session)) fail('session must be a lowercase UUID');
  return session;
}

export const validateSshRequest = validator((m): SshRequest => {
  const command = m.text('command');
  if (command.length > SSH_MAX_COMMAND) fail(`command must be at most ${SSH_MAX_COMMAND} characters`);
  return {
    droplet: m.id('droplet'),
    instance: m.string('instance'),
    session: sessionId(m),
    command,
    tty: m.bool('tty', false),
    cols: m.optInt('cols', 1, SSH_MAX_TERMINAL) ?? 80,
    rows: m.optInt('rows', 1, SSH_MAX_TERMINAL) ?? 24,
    ...optTerm(m),
  };
});

function optTerm(m: Fields): { term?: string } {
  const term = m.optString('term');
  if (term === undefined) return {};
  if (!/^[A-Za-z0-9._+-]{1,64}$/.test(term)) fail('term must be a terminal name like xterm-256color');
  return { term };
}

export const validateSshReply = validator((m): SshReply => {
  if (m.raw('ok') === true) return { ok: true };
  return { error: m.string('error'), code: m.oneOf('code', ['unknown_instance', 'too_many_sessions', 'bad_request', 'failed'] as const) };
});

export const validateSshExit = validator((m): SshExit => compact({
  exit_status: m.int('exit_status', 0, 255),
  signal: m.optString('signal'),
  error: m.optString('error'),
}));

/** Exactly one of resize, kill, pause, resume, ping. */
export const validateSshControl = validator((m): SshControl => {
  if (m.raw('resize') !== undefined) {
    const size = m.array('resize', (item, name) => {
      if (typeof item !== 'number' || !Number.isInteger(item) || item < 1 || item > SSH_MAX_TERMINAL) fail(`${name} must be an integer 1-${SSH_MAX_TERMINAL}`);
      return item;
    });
    if (size.length !== 2) fail('resize must be [cols, rows]');
    return { resize: [size[0]!, size[1]!] };
  }
  for (const key of ['kill', 'pause', 'resume', 'ping'] as const) {
    if (m.raw(key) === true) return { [key]: true } as SshControl;
  }
  fail('expected one of resize, kill, pause, resume, ping');
});

// ---- usage ----

function readDeaStatsInstance(item: unknown, name: string): DeaStatsInstance {
  const i = Fields.of(item, name);
  return {
    app: i.id('app'),
    version: i.string('version'),
    instance: i.string('instance'),
    index: i.int('index'),
    state: i.oneOf('state', INSTANCE_STATES),
    cpu: i.amount('cpu'),
    mem_kb: i.amount('mem_kb'),
    disk_bytes: i.amount('disk_bytes'),
  };
}

export const validateDeaStats = validator((m): DeaStats => {
  const memory = m.object('memory');
  return compact({
    dea: m.string('dea'),
    node: m.optString('node'),
    ts: m.amount('ts'),
    memory: { total_mb: memory.amount('total_mb'), reserved_mb: memory.amount('reserved_mb') },
    instances: m.array('instances', readDeaStatsInstance, { what: 'objects' }),
  });
});

// ---- components ----

export const validateComponentAnnounce = validator((m): ComponentAnnounce => {
  const credentials = m.optList('credentials', anyString, 'strings');
  if (credentials !== undefined && credentials.length !== 2) fail('credentials must be an array of 2 strings');
  return compact({
    type: m.string('type'),
    index: m.int('index'),
    uuid: m.string('uuid'),
    host: m.string('host'),
    node: m.optString('node'),
    credentials: credentials === undefined ? undefined : [credentials[0]!, credentials[1]!],
    metrics: m.optString('metrics'),
    roles: m.optList('roles', nonEmptyString, 'non-empty strings'),
    start: m.string('start'),
    uptime: m.text('uptime'),
  });
});

// ---- data services (bus/platform.ts) ----

function serviceInstanceId(f: Fields, key = 'id'): string {
  const id = f.string(key);
  if (!SERVICE_INSTANCE_ID.test(id)) fail(`${key} must be 1-40 lowercase letters, digits, '-' or '_', starting with a letter or digit`);
  return id;
}

export const validateServiceProvisionRequest = validator((m): ServiceProvisionRequest => ({
  id: serviceInstanceId(m),
  service: m.string('service'),
  plan: m.string('plan'),
  name: m.string('name'),
  owner: m.string('owner'),
}));

export const validateServiceDeprovisionRequest = validator((m): ServiceDeprovisionRequest => ({ id: serviceInstanceId(m) }));

export const validateServiceBindRequest = validator((m): ServiceBindRequest => compact({
  id: serviceInstanceId(m),
  app: m.id('app'),
  app_uid: m.optInt('app_uid', 1, 2_147_483_646),
}));

export const validateServiceUnbindRequest = validator((m): ServiceUnbindRequest => ({ id: serviceInstanceId(m), app: m.id('app') }));

/** At most this many ids per status request. */
export const SERVICE_STATUS_MAX_IDS = 1000;

export const validateServiceStatusRequest = validator((m): ServiceStatusRequest => {
  const ids = m.array('ids', (item, name) => {
    if (typeof item !== 'string' || !SERVICE_INSTANCE_ID.test(item)) fail(`${name} must be a service instance id`);
    return item;
  }, { what: 'service instance ids' });
  if (ids.length > SERVICE_STATUS_MAX_IDS) fail(`ids must hold at most ${SERVICE_STATUS_MAX_IDS} ids`);
  return { ids };
});

/**
 * A services node's reply: the expected shape, or a ServiceError (an
 * unknown code reads as `failed`). For the controller.
 */
function serviceReply<T>(read: (m: Fields) => T): Validator<T | ServiceError> {
  return validator((m) => {
    if (m.raw('error') !== undefined && m.raw('error') !== null) {
      const code = m.raw('code');
      return { error: m.string('error'), code: (SERVICE_ERROR_CODES as readonly unknown[]).includes(code) ? (code as ServiceError['code']) : 'failed' };
    }
    return read(m);
  });
}

export const validateServiceOfferingsReply = serviceReply((m): ServiceOfferingsReply => ({
  services: m.array('services', (item, name) => {
    const s = Fields.of(item, name);
    return {
      label: s.string('label'),
      description: s.text('description'),
      plans: s.array('plans', (plan, planName) => {
        const p = Fields.of(plan, planName);
        return { name: p.string('name'), description: p.text('description') };
      }, { what: 'objects' }),
    };
  }, { what: 'objects' }),
}));

function ok(m: Fields): true {
  if (m.raw('ok') !== true) fail('ok must be true');
  return true;
}

export const validateServiceProvisionReply = serviceReply((m): ServiceProvisionReply => ({ ok: ok(m), node: m.string('node') }));

export const validateServiceOk = serviceReply((m): ServiceOk => ({ ok: ok(m) }));

export const validateServiceBindReply = serviceReply((m): ServiceBindReply => compact({
  credentials: m.plainObject('credentials') as unknown as ServiceBindReply['credentials'],
  gid: m.optInt('gid', 1, 2_147_483_646),
}));

export const validateServiceStatusReply = serviceReply((m): ServiceStatusReply => ({
  instances: m.array('instances', (item, name) => {
    const i = Fields.of(item, name);
    return { id: i.string('id'), healthy: i.bool('healthy', false), detail: i.text('detail') };
  }, { what: 'objects' }),
}));

// ---- decoding ----

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses a message body and validates it. An empty body is validated as {},
 * because CF hello messages (e.g. `healthmanager.start`) are sent empty.
 */
export function decode<T>(data: Uint8Array, validate: Validator<T>): Validation<T> {
  let text: string;
  try {
    text = utf8.decode(data);
  } catch {
    return { ok: false, error: 'not UTF-8' };
  }
  if (text.trim() === '') {
    const result = validate({});
    return result.ok ? result : { ok: false, error: 'empty message' };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not JSON: ${describeJsonError(err)}` };
  }
  return validate(value);
}

/**
 * V8 quotes the offending input in its JSON errors (`Unexpected token 'h',
 * "hunter2 is"... is not valid JSON`); keep the diagnosis, drop the quote and
 * the offending character.
 */
function describeJsonError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const withoutInput = message
    .replace(/,\s*".*$/s, '')
    .replace(/^Unexpected token '.+?'/s, 'Unexpected token')
    .trim();
  return (withoutInput || 'invalid JSON').slice(0, 120);
}

// ---- rejection accounting ----

interface SubjectRejections {
  count: number;
  suppressed: number;
  lastError: string;
  lastLoggedAt: number;
  pendingReport?: NodeJS.Timeout;
}

/**
 * Counts rejected messages and logs them, at most one line per subject per
 * interval: a flood of bad messages costs a counter increment each, not a log
 * line each. Suppressed rejections are reported (with the latest error) in one
 * line when the interval ends. The body is never taken, so it cannot be logged.
 */
export class RejectionCounter {
  private totalCount = 0;
  private readonly subjects = new Map<string, SubjectRejections>();
  private readonly intervalMs: number;

  constructor(private readonly logger: Logger, opts: { intervalMs?: number } = {}) {
    this.intervalMs = opts.intervalMs ?? 5000;
  }

  get total(): number {
    return this.totalCount;
  }

  bySubject(): Record<string, number> {
    return Object.fromEntries([...this.subjects].map(([subject, s]) => [subject, s.count]));
  }

  reject(subject: string, error: string): void {
    this.totalCount++;
    let s = this.subjects.get(subject);
    if (!s) {
      s = { count: 0, suppressed: 0, lastError: error, lastLoggedAt: -Infinity };
      this.subjects.set(subject, s);
    }
    s.count++;
    s.lastError = error;
    const now = Date.now();
    if (!s.pendingReport && now - s.lastLoggedAt >= this.intervalMs) {
      this.report(subject, s, now);
      return;
    }
    s.suppressed++;
    if (!s.pendingReport) {
      const state = s;
      state.pendingReport = setTimeout(() => {
        state.pendingReport = undefined;
        this.report(subject, state, Date.now());
      }, Math.max(0, state.lastLoggedAt + this.intervalMs - now));
      // A pending report must not keep a finished process alive.
      state.pendingReport.unref();
    }
  }

  private report(subject: string, s: SubjectRejections, now: number): void {
    s.lastLoggedAt = now;
    this.logger.warn('rejected message', {
      subject,
      error: s.lastError,
      rejected: s.count,
      suppressed: s.suppressed > 0 ? s.suppressed : undefined,
    });
    s.suppressed = 0;
  }
}
