// The services node: provisioner and gateway of the three services on one
// host, answering the controller over NATS (bus/platform.ts, "Data
// services"), with its state in JetStream (store.ts) and its passwords in
// its data dir (secrets.ts).
//
// Every step records what it is about to do before doing it, and what it
// did after: provisioning writes the record (state `provisioning`, with the
// port and id it takes) before the backend exists and marks it `ready`
// after; deprovisioning marks it `deprovisioning`, removes the backend, and
// only then the record; a binding goes `binding` -> `bound`, `unbinding` ->
// gone. A node stopped anywhere in between (killed, its host rebooted)
// finds the step at its next start and finishes it, and every step can be
// asked again (the controller retries) and answers the same. So nothing
// can exist that no record names, save by losing the bucket: a sweep, at
// start and every --sweep-interval, looks for such strays, stops stray
// processes, removes what is certainly ours and holds no data (a login
// role no binding names), and reports the rest (directories, databases)
// for an operator, since they may hold someone's data.
//
// Operations on one instance run one at a time; different instances in
// parallel. Credentials never reach a log line, an error or the bucket.

import type { KV } from 'nats';
import type { Bus, BusMessage, Subscription } from '../bus/connection';
import { openKv } from '../bus/jetstream';
import type { Logger } from '../bus/log';
import {
  SERVICE_LABELS, SERVICES_BUCKET, SERVICES_QUEUE, ServiceSubjects,
  type ServiceError, type ServiceErrorCode, type ServiceLabel, type ServiceStatusReply,
} from '../bus/platform';
import { inRange, type IdRange } from '../bus/uids';
import {
  decode, validateServiceBindRequest, validateServiceDeprovisionRequest, validateServiceProvisionRequest,
  validateServiceStatusRequest, validateServiceUnbindRequest, type Validator,
} from '../bus/validate';
import { portFree, type Backend, type BackendContext, type Health, type Stray } from './backend';
import { FilesystemBackend } from './filesystem';
import { isRoot, Layout } from './layout';
import { OFFERINGS, offeringOf, planOf } from './offerings';
import { PostgresqlBackend } from './postgresql';
import { RedisBackend } from './redis';
import { SecretStore } from './secrets';
import { ServicesMetrics, type Operation } from './metrics';
import { InstanceStore, type InstanceRecord, type Stored } from './store';

export interface ServicesNodeOptions {
  node: string;
  dataDir: string;
  /** Where backends listen, and what credentials name. */
  host: string;
  /** Ports of redis-servers and the postgresql cluster. */
  ports: IdRange;
  /** Ids of instances: a redis-server's uid, a filesystem directory's gid. */
  serviceIds: IdRange;
  sweepIntervalMs: number;
}

export class ServicesSetupError extends Error {
  override name = 'ServicesSetupError';
}

/** A failure with the code and the one line the controller gets. */
class Refusal extends Error {
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const STATUS_TIMEOUT_MS = 5000;

export class ServicesNode {
  readonly layout: Layout;
  readonly backends: Record<ServiceLabel, Backend>;
  readonly metrics: ServicesMetrics;
  private readonly secrets: SecretStore;
  private store!: InstanceStore;
  private kv!: KV;
  private readonly subscriptions: Subscription[] = [];
  private readonly locks = new Map<string, Promise<unknown>>();
  private allocation: Promise<unknown> = Promise.resolve();
  private readonly inFlight = new Set<Promise<unknown>>();
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private closed = false;
  private readonly reported = new Set<string>();

  constructor(
    private readonly bus: Bus,
    private readonly options: ServicesNodeOptions,
    private readonly log: Logger,
  ) {
    this.layout = new Layout(options.dataDir);
    this.secrets = new SecretStore(this.layout.secrets);
    const ctx: BackendContext = {
      layout: this.layout,
      secrets: this.secrets,
      host: options.host,
      log,
      allocatePort: () => this.allocated(() => this.freePort([])),
      restarted: (label) => this.metrics.backendRestarts.inc({ service: label }),
    };
    this.metrics = new ServicesMetrics(async () => {
      if (this.store === undefined) return [];
      const mine = await this.mine();
      return Promise.all(mine.map(async (record) => ({ service: record.service, healthy: (await this.health(record.id)).healthy })));
    });
    this.backends = { redis: new RedisBackend(ctx), postgresql: new PostgresqlBackend(ctx), filesystem: new FilesystemBackend(ctx) };
  }

  get name(): string {
    return this.options.node;
  }

  /** The services this node can run. */
  available(): ServiceLabel[] {
    return SERVICE_LABELS.filter((label) => this.backends[label].unavailable() === undefined);
  }

  /**
   * Opens the bucket, brings this node's instances back (finishing any step
   * a stop cut short), sweeps, then answers requests.
   */
  async start(): Promise<void> {
    try {
      this.layout.prepare();
    } catch (error) {
      throw new ServicesSetupError(`cannot prepare ${this.layout.root}: ${(error as Error).message}`);
    }
    if (!isRoot()) this.log.warn('not running as root: every backend runs as this user, and apps (run as this user too) can read their files and passwords; run as root to isolate them');
    for (const label of SERVICE_LABELS) {
      const why = this.backends[label].unavailable();
      if (why !== undefined) this.log.warn(`${label} is not offered: ${why}`);
    }
    this.kv = await openKv(this.bus.nats.jetstream({ timeout: 10_000 }), SERVICES_BUCKET, { history: 1 });
    this.store = new InstanceStore(this.kv);

    const mine = await this.mine();
    for (const label of SERVICE_LABELS) {
      if (this.backends[label].unavailable() !== undefined) continue;
      try {
        await this.backends[label].start(mine);
      } catch (error) {
        this.log.error(`${label} could not start; its instances are unhealthy until it can`, { error: (error as Error).message });
      }
    }
    await Promise.all(mine.map((record) => this.locked(record.id, () => this.settle(record.id, true))));
    await this.sweep();

    const serve = <T>(subject: string, validate: Validator<T>, handle: (request: T) => Promise<object>, queue?: string, operation?: Operation) => {
      this.subscriptions.push(this.bus.subscribe(subject, (msg) => this.track(this.answer(msg, validate, handle, operation)), queue === undefined ? {} : { queue }));
    };
    const anything: Validator<object> = () => ({ ok: true, value: {} });
    serve(ServiceSubjects.offerings, anything, async () => this.offerings(), SERVICES_QUEUE);
    serve(ServiceSubjects.provision, validateServiceProvisionRequest, (r) => this.provision(r), SERVICES_QUEUE, 'provision');
    serve(ServiceSubjects.deprovision(this.name), validateServiceDeprovisionRequest, (r) => this.deprovision(r.id), undefined, 'deprovision');
    serve(ServiceSubjects.bind(this.name), validateServiceBindRequest, (r) => this.bind(r.id, r.app, r.app_uid), undefined, 'bind');
    serve(ServiceSubjects.unbind(this.name), validateServiceUnbindRequest, (r) => this.unbind(r.id, r.app), undefined, 'unbind');
    serve(ServiceSubjects.status(this.name), validateServiceStatusRequest, (r) => this.status(r.ids));
    await this.bus.flush();
    this.timer = setInterval(() => void this.periodic(), this.options.sweepIntervalMs);
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    for (const subscription of this.subscriptions) subscription.unsubscribe();
    // What is under way finishes (or its record says where it stopped).
    await Promise.race([Promise.allSettled([...this.inFlight, this.sweeping]), new Promise((resolve) => setTimeout(resolve, 20_000))]);
    await Promise.all(SERVICE_LABELS.map((label) => this.backends[label].stop().catch((error: unknown) => this.log.warn(`${label} did not stop cleanly`, { error: (error as Error).message }))));
  }

  // ---- requests ----

  private async answer<T>(msg: BusMessage, validate: Validator<T>, handle: (request: T) => Promise<object>, operation?: Operation): Promise<void> {
    const request = decode(msg.data, validate);
    if (!request.ok) {
      if (operation !== undefined) this.metrics.operations.inc({ operation, service: '', result: 'bad_request' });
      msg.respond(refusal('bad_request', `bad request on ${msg.subject}: ${request.error}`));
      return;
    }
    // Known before the work: a deprovisioning removes the record that says.
    const service = operation === undefined ? undefined : await this.serviceOf(request.value as { service?: string; id?: string });
    let reply: object;
    try {
      reply = await handle(request.value);
    } catch (error) {
      if (error instanceof Refusal) {
        reply = refusal(error.code, error.message);
      } else {
        this.log.error('request failed', { subject: msg.subject, error: (error as Error).message });
        reply = refusal('failed', (error as Error).message);
      }
    }
    if (operation !== undefined) this.metrics.operations.inc({ operation, service: service ?? '', result: 'code' in reply ? String(reply.code) : 'ok' });
    if (!msg.respond(reply)) this.log.debug('request without a reply subject', { subject: msg.subject });
  }

  /** The service a request is about, for the metrics: named by a provisioning, else its instance's record's; undefined when neither says. */
  private async serviceOf(request: { service?: string; id?: string }): Promise<ServiceLabel | undefined> {
    if ((SERVICE_LABELS as readonly (string | undefined)[]).includes(request.service)) return request.service as ServiceLabel;
    if (request.service !== undefined || request.id === undefined) return undefined;
    try {
      return (await this.store.get(request.id))?.record.service;
    } catch {
      return undefined;
    }
  }

  private offerings(): object {
    return { services: this.available().map(offeringOf) };
  }

  private backendFor(service: string): Backend {
    if (!(SERVICE_LABELS as readonly string[]).includes(service)) {
      throw new Refusal('unknown_service', `unknown service "${service}" (services: ${SERVICE_LABELS.join(', ')})`);
    }
    return this.backends[service as ServiceLabel];
  }

  async provision(request: { id: string; service: string; plan: string; name: string; owner: string }): Promise<object> {
    const backend = this.backendFor(request.service);
    if (planOf(backend.label, request.plan) === undefined) {
      throw new Refusal('unknown_plan', `unknown plan "${request.plan}" of ${backend.label} (plans: ${Object.keys(OFFERINGS[backend.label].plans).join(', ')})`);
    }
    const why = backend.unavailable();
    if (why !== undefined) throw new Refusal('unavailable', `${backend.label} cannot be provisioned on node ${this.name}: ${why}`);
    return this.locked(request.id, async () => {
      const existing = await this.store.get(request.id);
      if (existing) {
        const { record } = existing;
        if (record.service !== backend.label || record.plan !== request.plan) {
          throw new Refusal('bad_request', `service instance ${request.id} exists already, as ${record.service} ${record.plan}`);
        }
        if (record.node !== this.name) {
          if (record.state === 'ready') return { ok: true, node: record.node };
          throw new Refusal('in_progress', `service instance ${request.id} is being ${record.state === 'provisioning' ? 'provisioned' : 'deprovisioned'} by node ${record.node}`);
        }
        if (record.state === 'ready') return { ok: true, node: this.name };
        if (record.state === 'deprovisioning') throw new Refusal('in_progress', `service instance ${request.id} is being deprovisioned`);
      } else {
        const created = await this.allocated(async () => {
          const now = Math.floor(Date.now() / 1000);
          const record: InstanceRecord = {
            id: request.id, service: backend.label, plan: request.plan, name: request.name, owner: request.owner,
            node: this.name, state: 'provisioning', bindings: {}, created: now, updated: now,
          };
          const records = await this.store.all();
          if (backend.needsPort) record.port = await this.freePort(records);
          if (backend.needsSid) record.sid = this.freeId(records);
          return this.store.create(record);
        });
        // Another node took the same id at the same moment: the controller asks again and hears who.
        if (created === undefined) throw new Refusal('in_progress', `service instance ${request.id} is being provisioned elsewhere; ask again`);
        this.log.info('provisioning', { id: request.id, service: backend.label, plan: request.plan });
      }
      const record = await this.finishProvisioning(request.id);
      return { ok: true, node: record.node };
    });
  }

  /** Creates the backend of a `provisioning` record and marks it ready; on failure, takes it all back. */
  private async finishProvisioning(id: string): Promise<InstanceRecord> {
    const stored = (await this.store.get(id))!;
    const backend = this.backends[stored.record.service];
    try {
      await backend.create(stored.record);
    } catch (error) {
      this.log.error('provisioning failed; taking it back', { id, service: stored.record.service, error: (error as Error).message });
      await this.removeInstance(stored).catch((cleanup: unknown) => this.log.error('could not take back a failed provisioning; the next sweep tries again', { id, error: (cleanup as Error).message }));
      throw new Refusal('failed', `could not provision ${stored.record.service}: ${(error as Error).message}`);
    }
    const ready = await this.store.update(stored, { ...stored.record, state: 'ready' });
    this.log.info('provisioned', { id, service: ready.record.service, plan: ready.record.plan, port: ready.record.port });
    return ready.record;
  }

  async deprovision(id: string): Promise<object> {
    return this.locked(id, async () => {
      const stored = await this.store.get(id);
      if (stored === undefined) return { ok: true };
      if (stored.record.node !== this.name) throw new Refusal('not_found', `service instance ${id} is on node ${stored.record.node}`);
      await this.removeInstance(stored);
      return { ok: true };
    });
  }

  /** Marks it deprovisioning, removes its backend (bindings included), then its passwords and its record. */
  private async removeInstance(stored: Stored): Promise<void> {
    const { record } = stored;
    const marked = record.state === 'deprovisioning' ? stored : await this.store.update(stored, { ...record, state: 'deprovisioning' });
    await this.backends[record.service].remove(marked.record);
    this.secrets.remove(record.id);
    await this.store.remove(record.id);
    this.log.info('deprovisioned', { id: record.id, service: record.service });
  }

  async bind(id: string, app: string, appUid?: number): Promise<object> {
    return this.locked(id, async () => {
      let stored = await this.mineReady(id);
      const binding = Object.prototype.hasOwnProperty.call(stored.record.bindings, app) ? stored.record.bindings[app] : undefined;
      if (binding?.state !== 'bound') {
        const bindings = { ...stored.record.bindings, [app]: { state: 'binding' as const, ...(appUid === undefined ? {} : { app_uid: appUid }), since: nowSeconds() } };
        stored = await this.store.update(stored, { ...stored.record, bindings });
      }
      const reply = await this.backends[stored.record.service].bind(stored.record, app);
      if (binding?.state !== 'bound') {
        const bindings = { ...stored.record.bindings, [app]: { ...stored.record.bindings[app]!, state: 'bound' as const, since: nowSeconds() } };
        await this.store.update(stored, { ...stored.record, bindings });
        this.log.info('bound', { id, service: stored.record.service, app });
      }
      return reply;
    });
  }

  async unbind(id: string, app: string): Promise<object> {
    return this.locked(id, async () => {
      const stored = await this.store.get(id);
      if (stored === undefined) return { ok: true };
      if (stored.record.node !== this.name) throw new Refusal('not_found', `service instance ${id} is on node ${stored.record.node}`);
      if (!Object.prototype.hasOwnProperty.call(stored.record.bindings, app)) return { ok: true };
      await this.finishUnbinding(stored, app);
      return { ok: true };
    });
  }

  private async finishUnbinding(stored: Stored, app: string): Promise<Stored> {
    const binding = stored.record.bindings[app]!;
    const marked = binding.state === 'unbinding'
      ? stored
      : await this.store.update(stored, { ...stored.record, bindings: { ...stored.record.bindings, [app]: { ...binding, state: 'unbinding', since: nowSeconds() } } });
    await this.backends[marked.record.service].unbind(marked.record, app);
    const bindings = { ...marked.record.bindings };
    delete bindings[app];
    const done = await this.store.update(marked, { ...marked.record, bindings });
    this.log.info('unbound', { id: stored.record.id, service: stored.record.service, app });
    return done;
  }

  async status(ids: string[]): Promise<ServiceStatusReply> {
    const instances = await Promise.all(ids.map(async (id) => ({ id, ...(await this.health(id)) })));
    return { instances };
  }

  private async health(id: string): Promise<Health> {
    const stored = await this.store.get(id);
    if (stored === undefined) return { healthy: false, detail: 'no such service instance' };
    const { record } = stored;
    if (record.node !== this.name) return { healthy: false, detail: `on node ${record.node}` };
    if (record.state !== 'ready') return { healthy: false, detail: `being ${record.state === 'provisioning' ? 'provisioned' : 'deprovisioned'}` };
    const why = this.backends[record.service].unavailable();
    if (why !== undefined) return { healthy: false, detail: why };
    const timeout = new Promise<Health>((resolve) => setTimeout(() => resolve({ healthy: false, detail: `no answer within ${STATUS_TIMEOUT_MS / 1000} s` }), STATUS_TIMEOUT_MS).unref());
    return Promise.race([this.backends[record.service].health(record), timeout]);
  }

  /** A record of this node that is ready, or a refusal saying why not. */
  private async mineReady(id: string): Promise<Stored> {
    const stored = await this.store.get(id);
    if (stored === undefined) throw new Refusal('not_found', `no service instance ${id}`);
    if (stored.record.node !== this.name) throw new Refusal('not_found', `service instance ${id} is on node ${stored.record.node}`);
    if (stored.record.state !== 'ready') throw new Refusal('in_progress', `service instance ${id} is being ${stored.record.state === 'provisioning' ? 'provisioned' : 'deprovisioned'}`);
    return stored;
  }

  // ---- bringing records and backends together ----

  /**
   * Finishes whatever step the record says is under way. At the node's
   * start (`ensure`) it also brings a ready instance's backend up.
   */
  private async settle(id: string, ensure: boolean): Promise<void> {
    let stored = await this.store.get(id);
    if (stored === undefined || stored.record.node !== this.name) return;
    const { record } = stored;
    try {
      if (record.state === 'provisioning') {
        this.log.info('finishing a provisioning that a stop cut short', { id, service: record.service });
        await this.finishProvisioning(id);
        return;
      }
      if (record.state === 'deprovisioning') {
        this.log.info('finishing a deprovisioning that a stop cut short', { id, service: record.service });
        await this.removeInstance(stored);
        return;
      }
      if (ensure) await this.backends[record.service].create(record);
      for (const [app, binding] of Object.entries(record.bindings)) {
        if (binding.state === 'binding') {
          this.log.info('finishing a binding that a stop cut short', { id, app });
          await this.backends[record.service].bind(stored.record, app);
          stored = await this.store.update(stored, { ...stored.record, bindings: { ...stored.record.bindings, [app]: { ...binding, state: 'bound', since: nowSeconds() } } });
        } else if (binding.state === 'unbinding') {
          this.log.info('finishing an unbinding that a stop cut short', { id, app });
          stored = await this.finishUnbinding(stored, app);
        }
      }
    } catch (error) {
      this.log.error('could not bring a service instance to its recorded state; trying again later', { id, service: record.service, state: record.state, error: (error as Error).message });
    }
  }

  private async periodic(): Promise<void> {
    if (this.closed || this.sweeping) return;
    try {
      for (const record of await this.mine()) {
        const unsettled = record.state !== 'ready' || Object.values(record.bindings).some((b) => b.state !== 'bound');
        if (unsettled && !this.locks.has(record.id)) await this.locked(record.id, () => this.settle(record.id, false));
      }
    } catch (error) {
      this.log.warn('could not read the services bucket; trying again later', { error: (error as Error).message });
      return;
    }
    await this.sweep();
  }

  /** Looks for what no record names, and logs one line per stray; the strays found. */
  sweep(): Promise<Stray[]> {
    const run = async (): Promise<Stray[]> => {
      const mine = await this.mine();
      const strays: Stray[] = [];
      for (const label of SERVICE_LABELS) {
        if (this.backends[label].unavailable() !== undefined) continue;
        try {
          strays.push(...(await this.backends[label].sweep(mine)));
        } catch (error) {
          this.log.warn(`the sweep of ${label} failed`, { error: (error as Error).message });
        }
      }
      for (const stray of strays) {
        // Once per stray and node run: a sweep every few minutes need not repeat what is left for an operator.
        const key = `${stray.service} ${stray.kind} ${stray.name} ${stray.action}`;
        if (stray.action === 'reported' && this.reported.has(key)) continue;
        this.reported.add(key);
        const what = stray.action === 'reported' ? 'stray: no service instance names it; left for an operator (it may hold data)' : `stray: no service instance names it; ${stray.action}`;
        this.log.warn(what, { service: stray.service, kind: stray.kind, name: stray.name });
      }
      return strays;
    };
    const sweeping = run().catch((error: unknown) => {
      this.log.warn('the sweep failed', { error: (error as Error).message });
      return [] as Stray[];
    });
    this.sweeping = sweeping.then(() => undefined).finally(() => (this.sweeping = undefined));
    return sweeping;
  }

  private async mine(): Promise<InstanceRecord[]> {
    return (await this.store.all()).filter((record) => record.node === this.name);
  }

  // ---- allocation ----

  /** Runs `work` alone among allocations, so two provisionings never pick the same port or id. */
  private allocated<T>(work: () => Promise<T>): Promise<T> {
    const next = this.allocation.then(work, work);
    this.allocation = next.catch(() => {});
    return next;
  }

  /** A port of --ports that no record of this node and no backend holds, and that nothing listens on. */
  private async freePort(records: InstanceRecord[]): Promise<number> {
    const all = records.length > 0 ? records : await this.store.all();
    const used = new Set<number>([
      ...all.filter((r) => r.node === this.name && r.port !== undefined).map((r) => r.port!),
      ...SERVICE_LABELS.flatMap((label) => this.backends[label].reservedPorts()),
    ]);
    const { first, last } = this.options.ports;
    const size = last - first + 1;
    // From a random place, so that platforms side by side on one host seldom try the same port.
    const start = Math.floor(Math.random() * size);
    for (let i = 0; i < size; i++) {
      const port = first + ((start + i) % size);
      if (!used.has(port) && (await portFree(this.options.host, port))) return port;
    }
    throw new Refusal('failed', `no free port left in ${first}-${last} on node ${this.name}`);
  }

  /** An id of --service-ids that no record of the cluster holds. */
  private freeId(records: InstanceRecord[]): number {
    const used = new Set(records.map((r) => r.sid).filter((sid): sid is number => sid !== undefined));
    const { first, last } = this.options.serviceIds;
    const size = last - first + 1;
    const start = Math.floor(Math.random() * size);
    for (let i = 0; i < size; i++) {
      const id = first + ((start + i) % size);
      if (!used.has(id) && inRange(this.options.serviceIds, id)) return id;
    }
    throw new Refusal('failed', `no free id left in ${first}-${last}`);
  }

  // ---- one operation per instance at a time ----

  private locked<T>(id: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => {});
    this.locks.set(id, settled);
    void settled.then(() => {
      if (this.locks.get(id) === settled) this.locks.delete(id);
    });
    return next;
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }
}

function refusal(code: ServiceErrorCode, message: string): ServiceError {
  // One line: a backend's message may span several.
  return { error: message.split('\n')[0]!.slice(0, 500), code };
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
