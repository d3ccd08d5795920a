// `skiff controller` as a child process for end-to-end tests, a small HTTP
// client for its API, and fake peers (DEAs, a stager) on the real bus.

import * as http from 'node:http';
import { join } from 'node:path';
import { connectBus, type Bus } from '../bus/connection';
import { silentLogger } from '../bus/log';
import { eventually, freePort, spawnTracked, terminate, type NatsServer, type TeardownHost } from './harness';

const ROOT = join(__dirname, '..');
export const ADMIN = { email: 'admin@example.com', password: 'admin-password-1' };



export interface ControllerProcess {
  readonly port: number;
  readonly pid: number;
  log(): string;
  stop(): Promise<number | null>;
  api: ApiClient;
}

export async function startController(
  t: TeardownHost,
  nats: NatsServer,
  opts: { args?: string[]; env?: Record<string, string> } = {},
): Promise<ControllerProcess> {
  const port = await freePort();
  const args = [join(ROOT, 'bin/skiff'), 'controller', '--port', String(port), '--nats', nats.url, '--find-window-ms', '300', ...(opts.args ?? [])];
  const child = spawnTracked(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SKIFF_LOG_LEVEL: 'info', SKIFF_ADMIN_EMAIL: ADMIN.email, SKIFF_ADMIN_PASSWORD: ADMIN.password, ...opts.env },
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stopped: Promise<number | null> | undefined;
  const controller: ControllerProcess = {
    port,
    pid: child.pid!,
    log: () => output,
    api: new ApiClient(port),
    stop: () => (stopped ??= terminate(child, 3000)),
  };
  t.teardown(() => controller.stop());
  await Promise.race([
    eventually(() => /controller listening/.test(output), 'controller to listen', 15_000),
    exited.then((code) => {
      throw new Error(`controller exited with ${code} before listening:\n${output}`);
    }),
  ]);
  return controller;
}

export interface ApiResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json(): any;
}

export class ApiClient {
  token: string | undefined;

  constructor(readonly port: number) {}

  request(method: string, path: string, opts: { body?: unknown; raw?: Buffer; headers?: Record<string, string>; token?: string | null } = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...opts.headers };
    const token = opts.token === null ? undefined : opts.token ?? this.token;
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    let payload: Buffer | undefined = opts.raw;
    if (opts.body !== undefined) {
      payload = Buffer.from(JSON.stringify(opts.body));
      headers['content-type'] = 'application/json';
    }
    if (payload !== undefined) headers['content-length'] = String(payload.length);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: this.port, method, path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body.toString()) });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      // A server that answers early (413) may close while we still send: the answer counts, not the write error.
      if (payload !== undefined) req.end(payload);
      else req.end();
    });
  }

  get(path: string, opts: { token?: string | null } = {}) {
    return this.request('GET', path, opts);
  }
  post(path: string, body: unknown, opts: { token?: string | null } = {}) {
    return this.request('POST', path, { ...opts, body });
  }
  put(path: string, body: unknown, opts: { token?: string | null } = {}) {
    return this.request('PUT', path, { ...opts, body });
  }
  delete(path: string, opts: { token?: string | null } = {}) {
    return this.request('DELETE', path, opts);
  }

  async login(email: string, password: string): Promise<string> {
    const res = await this.post(`/users/${encodeURIComponent(email)}/tokens`, { password }, { token: null });
    if (res.status !== 200) throw new Error(`login ${email}: ${res.status} ${res.body}`);
    return res.json().token;
  }
}

/** A bus client for the test's own peers, closed at teardown. */
export async function testBus(t: TeardownHost, nats: NatsServer): Promise<Bus> {
  const bus = await connectBus({ servers: nats.url, name: 'test-peer', logger: silentLogger });
  t.teardown(() => bus.close());
  return bus;
}

export interface FakeDea {
  id: string;
  /** dea.<id>.start messages received. */
  starts: any[];
  /** Instances it pretends to run, answered on dea.find.droplet and removed by dea.stop. */
  running: Array<{ droplet: string; version: string; instance: string; index: number; state: string }>;
  advertise(): void;
  stops: any[];
}

/**
 * A DEA stand-in on the real bus: advertises, records starts, answers
 * dea.find.droplet with the instances it "runs" (RUNNING at once, or
 * STARTING with `startAs`), and removes them on a matching dea.stop.
 */
export function fakeDea(
  t: TeardownHost,
  bus: Bus,
  opts: { id: string; memory: number; runtimes?: string[]; startAs?: string; advertiseEveryMs?: number; /** A slow DEA: the instance shows in find.droplet only this long after the start. */ reportAfterMs?: number },
): FakeDea {
  let seq = 0;
  const dea: FakeDea = {
    id: opts.id,
    starts: [],
    stops: [],
    running: [],
    advertise: () => {
      const counts: Record<string, number> = {};
      for (const i of dea.running) counts[i.droplet] = (counts[i.droplet] ?? 0) + 1;
      bus.publish('dea.advertise', { id: opts.id, available_memory: opts.memory, runtimes: opts.runtimes ?? ['node'], app_id_to_count: counts });
    },
  };
  const subs = [
    bus.subscribe('dea.locate', () => dea.advertise()),
    bus.subscribe(`dea.${opts.id}.start`, (msg) => {
      const start = JSON.parse(new TextDecoder().decode(msg.data));
      dea.starts.push(start);
      const instance = { droplet: start.droplet, version: start.version, index: start.index, instance: `${opts.id}-${++seq}`, state: opts.startAs ?? 'RUNNING' };
      if (opts.reportAfterMs === undefined) dea.running.push(instance);
      else setTimeout(() => dea.running.push(instance), opts.reportAfterMs);
    }),
    bus.subscribe('dea.find.droplet', (msg) => {
      const q = JSON.parse(new TextDecoder().decode(msg.data));
      for (const i of dea.running) {
        if (i.droplet !== q.droplet) continue;
        if (q.indices && !q.indices.includes(i.index)) continue;
        if (q.instances && !q.instances.includes(i.instance)) continue;
        if (q.states && !q.states.includes(i.state)) continue;
        msg.respond({
          dea: opts.id, ...i, state_timestamp: 1764100000,
          ...(q.include_stats ? { stats: { name: 'x', host: '127.0.0.1', port: 61000 + i.index, uris: [], uptime: 1, mem_quota: 1, disk_quota: 1, fds_quota: 1, usage: { cpu: 1, mem: 2, disk: 3, time: 't' } } } : {}),
        });
      }
    }),
    bus.subscribe('dea.stop', (msg) => {
      const q = JSON.parse(new TextDecoder().decode(msg.data));
      dea.stops.push(q);
      dea.running = dea.running.filter((i) =>
        !(i.droplet === q.droplet &&
          (!q.indices || q.indices.includes(i.index)) &&
          (!q.instances || q.instances.includes(i.instance)) &&
          (!q.version || q.version === i.version)));
    }),
  ];
  dea.advertise();
  const timer = setInterval(() => dea.advertise(), opts.advertiseEveryMs ?? 2000);
  t.teardown(() => {
    clearInterval(timer);
    for (const s of subs) s.unsubscribe();
  });
  return dea;
}

/** A stager stand-in: answers vcap.stager.default after publishing log lines on the staging subject. */
export function fakeStager(
  t: TeardownHost,
  bus: Bus,
  reply: (request: any) => object | Promise<object>,
): { requests: any[] } {
  const requests: any[] = [];
  const sub = bus.subscribe('vcap.stager.default', async (msg) => {
    const request = JSON.parse(new TextDecoder().decode(msg.data));
    requests.push(request);
    msg.respond(await reply(request));
  }, { queue: 'stagers' });
  t.teardown(() => sub.unsubscribe());
  return { requests };
}

export interface FakeServicesNode {
  node: string;
  /** Provisioned instances by id. */
  instances: Map<string, { service: string; plan: string; name: string }>;
  /** Bindings granted, `<id> <app>` -> credentials. */
  bindings: Map<string, Record<string, unknown>>;
  /** Every request, by subject suffix (offerings, provision, bind, unbind, deprovision, status). */
  requests: Array<{ op: string; body: any }>;
  /** While set, provisions are recorded but not answered (a node that dies half-way). */
  silent: boolean;
  /** While set, requests to this node (bind, unbind, deprovision, status) go unanswered. */
  down: boolean;
  /** Healthy or not, per instance id (default healthy). */
  healthy: Map<string, boolean>;
  stop(): void;
}

/**
 * A services node stand-in on the real bus (bus/platform.ts ServiceSubjects):
 * offerings redis and postgresql with plans free and large; provisioning
 * idempotent by id, credentials per binding (a fresh password each), the
 * filesystem with a gid.
 */
export function fakeServicesNode(t: TeardownHost, bus: Bus, node = 'svc-1'): FakeServicesNode {
  const fake: FakeServicesNode = { node, instances: new Map(), bindings: new Map(), requests: [], silent: false, down: false, healthy: new Map(), stop: () => {} };
  const decode = (data: Uint8Array) => JSON.parse(new TextDecoder().decode(data));
  const plans = [{ name: 'free', description: '64 MB' }, { name: 'large', description: '512 MB' }];
  const subs = [
    bus.subscribe('services.offerings', (msg) => {
      fake.requests.push({ op: 'offerings', body: decode(msg.data) });
      msg.respond({ services: ['redis', 'postgresql', 'filesystem'].map((label) => ({ label, description: `${label} for tests`, plans })) });
    }, { queue: 'services' }),
    bus.subscribe('services.provision', (msg) => {
      const body = decode(msg.data);
      fake.requests.push({ op: 'provision', body });
      if (!['redis', 'postgresql', 'filesystem'].includes(body.service)) {
        msg.respond({ error: `unknown service ${body.service}`, code: 'unknown_service' });
        return;
      }
      fake.instances.set(body.id, { service: body.service, plan: body.plan, name: body.name });
      if (!fake.silent) msg.respond({ ok: true, node });
    }, { queue: 'services' }),
    bus.subscribe(`services.${node}.*`, (msg) => {
      const op = msg.subject.split('.')[2]!;
      const body = decode(msg.data);
      if (fake.down) return;
      fake.requests.push({ op, body });
      const instance = fake.instances.get(body.id);
      switch (op) {
        case 'bind': {
          if (!instance) return void msg.respond({ error: 'no such service instance', code: 'not_found' });
          const key = `${body.id} ${body.app}`;
          if (!fake.bindings.has(key)) {
            const password = `pw-${Math.random().toString(36).slice(2)}`;
            fake.bindings.set(key, instance.service === 'filesystem'
              ? { dir: `/srv/${body.id}` }
              : { host: '127.0.0.1', hostname: '127.0.0.1', port: 6400, password, uri: `${instance.service === 'redis' ? 'redis' : 'postgres'}://u:${password}@127.0.0.1:6400` });
          }
          msg.respond({ credentials: fake.bindings.get(key), ...(instance.service === 'filesystem' ? { gid: 2_200_001 } : {}) });
          return;
        }
        case 'unbind':
          fake.bindings.delete(`${body.id} ${body.app}`);
          return void msg.respond({ ok: true });
        case 'deprovision':
          fake.instances.delete(body.id);
          for (const key of [...fake.bindings.keys()]) if (key.startsWith(`${body.id} `)) fake.bindings.delete(key);
          return void msg.respond({ ok: true });
        case 'status':
          return void msg.respond({
            instances: body.ids.filter((id: string) => fake.instances.has(id)).map((id: string) => ({ id, healthy: fake.healthy.get(id) ?? true, detail: fake.healthy.get(id) === false ? 'redis-server is down' : 'running' })),
          });
        default:
          msg.respond({ error: `unknown request ${op}`, code: 'bad_request' });
      }
    }),
  ];
  fake.stop = () => {
    for (const s of subs) s.unsubscribe();
  };
  t.teardown(() => fake.stop());
  return fake;
}
