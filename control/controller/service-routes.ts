// The REST side of data services (control/API.md, "Data services"):
// offerings, service instances (a user's own, like apps), and the checks an
// app's `services` list goes through. The work is services.ts's.

import type { Logger } from '../../bus/log';
import type { ServiceOffering } from '../../bus/platform';
import { HttpError, type Exchange } from './http';
import {
  describeState, ServiceBindings, ServiceNodeError, ServiceStore, type ServiceRecord,
} from './services';
import type { AppRecord, Store, UserRecord } from './store';
import { checkNewService, isServiceName } from './validation';

/** What the routes need of the API: who asks, and for whom. */
export interface ServiceRoutesHost {
  authenticate(e: Exchange): Promise<UserRecord>;
  /** The owner the caller acts for with `?group=` (admins only), else undefined. */
  actingFor(e: Exchange, user: UserRecord): Promise<string | undefined>;
  /** Takes an app's service away (its record, a rolling restart, an `unbound` event, the node's unbind). */
  unbindFromApp(app: AppRecord, service: ServiceRecord, actor: string): Promise<void>;
}

/** A service as the API shows it: its record, the apps bound to it, and its health from its node. */
export interface ServiceView extends ServiceRecord {
  bound_apps: string[];
  health: { healthy: boolean | null; detail: string };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

export class ServiceRoutes {
  constructor(
    private readonly host: ServiceRoutesHost,
    private readonly bindings: ServiceBindings,
    private readonly apps: Store,
    private readonly log: Logger,
  ) {}

  private get store(): ServiceStore {
    return this.bindings.store;
  }

  // ---- offerings ----

  async offerings(e: Exchange): Promise<void> {
    await this.host.authenticate(e);
    e.json(200, { services: await this.askOfferings() });
  }

  private async askOfferings(): Promise<ServiceOffering[]> {
    try {
      return await this.bindings.broker.offerings();
    } catch (err) {
      throw nodeFailure(err, 'the offerings');
    }
  }

  // ---- service instances ----

  async list(e: Exchange): Promise<void> {
    const user = await this.host.authenticate(e);
    const group = await this.host.actingFor(e, user);
    const all = e.query.get('all');
    if (all !== null && all !== '0' && !user.admin) throw new HttpError(403, 'only an admin may list every service');
    const every = await this.store.list();
    const shown = all !== null && all !== '0' ? every : every.filter((s) => s.owner === (group ?? user.email));
    e.json(200, await this.views(shown));
  }

  async show(e: Exchange, name: string): Promise<void> {
    const { service } = await this.find(e, name);
    e.json(200, (await this.views([service]))[0]);
  }

  async create(e: Exchange): Promise<void> {
    const user = await this.host.authenticate(e);
    const owner = (await this.host.actingFor(e, user)) ?? user.email;
    const body = checkNewService(await e.readJson());
    if (!body.ok) throw new HttpError(400, body.error);
    const { name, service: label, plan } = body.value;
    const offering = (await this.askOfferings()).find((o) => o.label === label);
    if (offering === undefined) throw new HttpError(400, `unknown service ${label} (skiff marketplace lists them)`);
    if (!offering.plans.some((p) => p.name === plan)) {
      throw new HttpError(400, `${label} has no plan ${plan} (its plans: ${offering.plans.map((p) => p.name).join(', ')})`);
    }
    const now = nowSeconds();
    const record: ServiceRecord = { id: ServiceStore.newId(), name, service: label, plan, owner, node: null, state: 'provisioning', created: now, updated: now };
    if (!(await this.store.create(record))) throw new HttpError(409, `the service name ${name} is taken`);
    let node: string;
    try {
      node = await this.bindings.broker.provision({ id: record.id, service: label, plan, name, owner });
    } catch (err) {
      if (err instanceof ServiceNodeError && (err.kind === 'refused' || err.kind === 'unreachable')) {
        // Nothing was made (or the node said why not): the name is free again.
        await this.store.remove(record);
        throw nodeFailure(err, `service ${name}`);
      }
      // A node may have made it without its answer arriving: the reconcile pass asks again (same id, one backend).
      this.log.warn('provisioning unconfirmed; the reconcile pass finishes it', { service: name, error: (err as Error).message });
      throw new HttpError(502, `${(err as Error).message}: ${name} stays listed as being created until a services node confirms it (skiff services)`);
    }
    const ready = await this.store.update(record.id, (current) => ({ ...current, node, state: 'ready', updated: nowSeconds() }));
    this.log.info('service created', { service: name, offering: label, plan, owner, node });
    e.json(201, (await this.views([ready ?? { ...record, node, state: 'ready' }]))[0]);
  }

  async remove(e: Exchange, name: string): Promise<void> {
    const { user, service } = await this.find(e, name);
    const force = ['1', 'true', 'yes'].includes(e.query.get('force') ?? '');
    if (service.state === 'provisioning') throw new HttpError(409, `service ${name} is still being created: delete it once skiff services shows it ready`);
    const bound = await this.boundApps(service.id);
    if (bound.length > 0 && !force) {
      throw new HttpError(409, `service ${name} is bound to ${bound.map((a) => a.name).join(', ')}: unbind it first (skiff unbind-service ${name} APP), or delete it with --force`);
    }
    for (const app of bound) await this.host.unbindFromApp(app, service, user.email);
    await this.deleteService(service);
    e.empty(204);
  }

  /** Deprovisions a service nothing is bound to any more (its data is gone) and forgets it. */
  async deleteService(service: ServiceRecord): Promise<void> {
    const deleting = (await this.store.update(service.id, (current) => (current.state === 'deleting' ? undefined : { ...current, state: 'deleting', updated: nowSeconds() }))) ?? service;
    try {
      await this.bindings.finishDeleting(deleting);
    } catch (err) {
      throw nodeFailure(err, `service ${service.name}`, `; it stays listed as being deleted, and the controller tries again`);
    }
  }

  /** Every service of a user (who is being deleted), after their apps. */
  async removeAllOf(owner: string): Promise<void> {
    for (const service of (await this.store.list()).filter((s) => s.owner === owner)) {
      await this.deleteService(service).catch((err: unknown) =>
        this.log.warn('a deleted user\'s service is left to the reconcile pass', { service: service.name, error: (err as Error).message }),
      );
    }
  }

  private async find(e: Exchange, name: string): Promise<{ user: UserRecord; service: ServiceRecord }> {
    const user = await this.host.authenticate(e);
    const group = await this.host.actingFor(e, user);
    const service = isServiceName(name) ? await this.store.getByName(name) : undefined;
    if (service === undefined || (group !== undefined && service.owner !== group)) throw new HttpError(404, `no service named ${name}`);
    if (service.owner !== user.email && !user.admin) throw new HttpError(403, `service ${name} belongs to another user`);
    return { user, service };
  }

  private async boundApps(serviceId: string): Promise<AppRecord[]> {
    return (await this.apps.listApps()).filter((app) => (app.services ?? []).includes(serviceId));
  }

  // ---- an app's services ----

  /**
   * The records of the services an app asks for by name, in its order: each
   * must exist, be ready, and belong to the app's owner (as in Cloud Foundry,
   * an app binds the services of its own space).
   */
  async resolve(names: string[], appOwner: string): Promise<ServiceRecord[]> {
    const records: ServiceRecord[] = [];
    for (const name of names) {
      const service = await this.store.getByName(name);
      if (service === undefined) throw new HttpError(400, `no service named ${name} (skiff services lists them; skiff create-service makes one)`);
      if (service.owner !== appOwner) throw new HttpError(403, `service ${name} belongs to another user: an app binds only its owner's services`);
      if (service.state !== 'ready') throw new HttpError(409, `service ${name} is ${describeState(service.state)}`);
      records.push(service);
    }
    return records;
  }

  /** Names of service ids, for app views (a service gone meanwhile is left out). */
  async names(ids: string[], known?: Map<string, ServiceRecord>): Promise<string[]> {
    const names: string[] = [];
    for (const id of ids) {
      const service = known?.get(id) ?? (await this.store.get(id));
      if (service !== undefined) names.push(service.name);
    }
    return names;
  }

  async byId(): Promise<Map<string, ServiceRecord>> {
    return new Map((await this.store.list()).map((s) => [s.id, s]));
  }

  // ---- views ----

  private async views(services: ServiceRecord[]): Promise<ServiceView[]> {
    const apps = await this.apps.listApps();
    const health = await this.health(services);
    return services.map((s) => ({
      id: s.id,
      name: s.name,
      service: s.service,
      plan: s.plan,
      owner: s.owner,
      node: s.node,
      state: s.state,
      bound_apps: apps.filter((a) => (a.services ?? []).includes(s.id)).map((a) => a.name).sort(),
      health: health.get(s.id) ?? { healthy: null, detail: describeState(s.state) },
      created: s.created,
      updated: s.updated,
    }));
  }

  /** Each ready service's health, asked of its node (all nodes at once, a short wait each). */
  private async health(services: ServiceRecord[]): Promise<Map<string, { healthy: boolean | null; detail: string }>> {
    const byNode = new Map<string, string[]>();
    for (const s of services) if (s.state === 'ready' && s.node !== null) byNode.set(s.node, [...(byNode.get(s.node) ?? []), s.id]);
    const health = new Map<string, { healthy: boolean | null; detail: string }>();
    await Promise.all([...byNode].map(async ([node, ids]) => {
      try {
        const reply = await this.bindings.broker.status(node, ids);
        for (const id of ids) {
          const found = reply.instances.find((i) => i.id === id);
          health.set(id, found ? { healthy: found.healthy, detail: found.detail } : { healthy: false, detail: `unknown to node ${node}` });
        }
      } catch (err) {
        const detail = err instanceof ServiceNodeError && err.kind === 'refused' ? err.message : `node ${node} does not answer`;
        for (const id of ids) health.set(id, { healthy: null, detail });
      }
    }));
    return health;
  }
}

/** A services node's failure as the API's error: refusals keep the node's line, with a status that fits its code. */
export function nodeFailure(err: unknown, what: string, more = ''): HttpError {
  if (!(err instanceof ServiceNodeError)) return err instanceof HttpError ? err : new HttpError(502, `${what}: ${(err as Error).message}${more}`);
  switch (err.kind) {
    case 'unreachable':
      // No node at all: say how to get one. A node gone: its name says which to bring back.
      return err.message.startsWith('no services node')
        ? new HttpError(503, `${err.message}: give a node the services role (skiff role add services)${more}`)
        : new HttpError(503, `${what}: ${err.message}${more}`);
    case 'refused': {
      const status = err.code === 'bad_request' || err.code === 'unknown_service' || err.code === 'unknown_plan' ? 400
        : err.code === 'in_progress' ? 409
        : err.code === 'unavailable' ? 503
        : err.code === 'not_found' ? 404
        : 502;
      return new HttpError(status, `${what}: ${err.message}${more}`);
    }
    default:
      return new HttpError(502, `${what}: ${err.message}${more}`);
  }
}
