// Data services on the controller's side (design.md, Data services): the
// service instances users create, the bindings of apps to them with their
// credentials, and the requests to the services nodes that do the work.
//
// State, in KV buckets only the controller reads (bus/permissions.ts; the
// health manager reads skiff_apps, so no credential goes into an app record):
//   skiff_service_instances  id -> ServiceRecord (no secret)
//   skiff_service_names      name -> id (names are unique on the platform)
//   skiff_service_bindings   <app id>.<service id> -> BindingRecord (the credentials)
// An app record lists the ids of its services (`services`): the desired
// state. The bindings bucket is what the nodes granted.
//
// Every step is idempotent on the nodes (provision by id, bind per app,
// unbind and deprovision of what is gone), and each record says how far a
// step got, so that a controller stopped half-way leaves nothing that the
// next reconcile pass (sweep) cannot finish: a service still provisioning is
// provisioned again (same id, same backend), one being deleted is
// deprovisioned again, a binding no app wants any more is unbound.

import { randomUUID } from 'node:crypto';
import type { KV, KvEntry } from 'nats';
import { BusRequestError, type Bus } from '../../bus/connection';
import { isLive, isRevisionConflict, openKv } from '../../bus/jetstream';
import type { Logger } from '../../bus/log';
import {
  isServiceError, ServiceSubjects, type ServiceBindReply, type ServiceError, type ServiceOffering, type ServiceProvisionRequest, type ServiceStatusReply,
} from '../../bus/platform';
import {
  validateServiceBindReply, validateServiceOfferingsReply, validateServiceOk, validateServiceProvisionReply, validateServiceStatusReply, type Validator,
} from '../../bus/validate';
import type { ServiceBinding } from '../../bus/messages';
import type { AppRecord } from './store';

export const ServiceBuckets = {
  instances: 'skiff_service_instances',
  names: 'skiff_service_names',
  bindings: 'skiff_service_bindings',
} as const;

/**
 * `provisioning`: asked of a node, not yet confirmed (node null until then);
 * `ready`: provisioned on `node`; `deleting`: being deprovisioned.
 */
export type ServiceState = 'provisioning' | 'ready' | 'deleting';

export interface ServiceRecord {
  id: string;
  name: string;
  /** The offering's label: redis, postgresql, filesystem. */
  service: string;
  plan: string;
  owner: string;
  node: string | null;
  state: ServiceState;
  created: number;
  /** Epoch seconds of the last change of state. */
  updated: number;
}

/** What a node granted one app: secrets. Never logged, never in an event or an error. */
export interface BindingRecord {
  app: string;
  service: string;
  credentials: Record<string, unknown>;
  gid?: number;
  created: number;
}


/** Cloud Foundry v1 tagged each offering; apps that look services up by tag find these. */
const TAGS: Record<string, string[]> = {
  redis: ['redis', 'key-value', 'nosql'],
  postgresql: ['postgresql', 'relational', 'sql'],
  filesystem: ['filesystem', 'persistent'],
};

export function serviceTags(label: string): string[] {
  return TAGS[label] ?? [label];
}

export function bindingKey(appId: string, serviceId: string): string {
  return `${appId}.${serviceId}`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CAS_ATTEMPTS = 20;
const nowSeconds = () => Math.floor(Date.now() / 1000);

function parse<T>(entry: KvEntry): T {
  return JSON.parse(decoder.decode(entry.value)) as T;
}

function encode(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export class ServiceStore {
  private constructor(
    private readonly instances: KV,
    private readonly names: KV,
    private readonly bindingsKv: KV,
  ) {}

  static async open(bus: Bus, timeoutMs = 10_000): Promise<ServiceStore> {
    const js = bus.nats.jetstream({ timeout: timeoutMs });
    const kv = (name: string) => openKv(js, name, { history: 1 });
    const [instances, names, bindings] = await Promise.all([kv(ServiceBuckets.instances), kv(ServiceBuckets.names), kv(ServiceBuckets.bindings)]);
    return new ServiceStore(instances, names, bindings);
  }

  static newId(): string {
    // Fits bus/platform.ts SERVICE_INSTANCE_ID: it names a directory, a database and a role on the node.
    return randomUUID();
  }

  async get(id: string): Promise<ServiceRecord | undefined> {
    const entry = await this.instances.get(id);
    return isLive(entry) ? parse<ServiceRecord>(entry) : undefined;
  }

  async getByName(name: string): Promise<ServiceRecord | undefined> {
    const entry = await this.names.get(name);
    return isLive(entry) ? this.get(decoder.decode(entry.value)) : undefined;
  }

  async list(): Promise<ServiceRecord[]> {
    return (await all<ServiceRecord>(this.instances)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** False when the name is taken. */
  async create(record: ServiceRecord): Promise<boolean> {
    try {
      await this.names.create(record.name, encoder.encode(record.id));
    } catch (err) {
      if (isLive(await this.names.get(record.name))) return false;
      throw err;
    }
    try {
      await this.instances.create(record.id, encode(record));
    } catch (err) {
      await this.names.delete(record.name).catch(() => {});
      throw err;
    }
    return true;
  }

  /** Read-modify-write; `change` returns undefined to leave the record as it is. Undefined when it is gone. */
  async update(id: string, change: (record: ServiceRecord) => ServiceRecord | undefined): Promise<ServiceRecord | undefined> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await this.instances.get(id);
      if (!isLive(entry)) return undefined;
      const after = change(parse<ServiceRecord>(entry));
      if (after === undefined) return parse<ServiceRecord>(entry);
      try {
        await this.instances.update(id, encode(after), entry.revision);
        return after;
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
      }
    }
    throw new Error(`service ${id}: too many concurrent changes, try again`);
  }

  /** Forgets the service and frees its name (only its own reservation: the name may have been taken anew). */
  async remove(record: ServiceRecord): Promise<void> {
    await this.instances.delete(record.id);
    const name = await this.names.get(record.name);
    if (isLive(name) && decoder.decode(name.value) === record.id) await this.names.delete(record.name);
  }

  async binding(appId: string, serviceId: string): Promise<BindingRecord | undefined> {
    const entry = await this.bindingsKv.get(bindingKey(appId, serviceId));
    return isLive(entry) ? parse<BindingRecord>(entry) : undefined;
  }

  async putBinding(binding: BindingRecord): Promise<void> {
    await this.bindingsKv.put(bindingKey(binding.app, binding.service), encode(binding));
  }

  async deleteBinding(appId: string, serviceId: string): Promise<void> {
    // Purged, not only deleted: the credentials must not stay in the stream's history.
    await this.bindingsKv.purge(bindingKey(appId, serviceId));
  }

  async bindings(): Promise<BindingRecord[]> {
    return all<BindingRecord>(this.bindingsKv);
  }
}

async function all<T>(kv: KV): Promise<T[]> {
  const keys: string[] = [];
  for await (const key of await kv.keys()) keys.push(key);
  const entries = await Promise.all(keys.map((key) => kv.get(key)));
  return entries.filter(isLive).map((entry) => parse<T>(entry));
}

/**
 * Why a services node did not do what was asked: `refused` (it answered
 * with an error: `code` is the node's), `unreachable` (nobody listens:
 * no node, or not that node), `timeout` (it may have done it: ask again),
 * `bad-reply` (an answer of the wrong shape).
 */
export class ServiceNodeError extends Error {
  override name = 'ServiceNodeError';
  constructor(
    message: string,
    readonly kind: 'refused' | 'unreachable' | 'timeout' | 'bad-reply',
    readonly code?: string,
  ) {
    super(message);
  }
}

/** `skiff services` waits this long for each node's health. */
const STATUS_TIMEOUT_MS = 1500;

/** The controller's side of the services nodes' subjects (bus/platform.ts ServiceSubjects). */
export class ServiceBroker {
  /** Every request but provisioning: binding, unbinding, deprovisioning. */
  private readonly requestMs: number;

  /** `provisionMs`: how long a node may take to provision (start a redis-server, create a database). */
  constructor(
    private readonly bus: Bus,
    private readonly provisionMs = 60_000,
  ) {
    this.requestMs = Math.min(30_000, Math.max(1000, provisionMs / 2));
  }

  async offerings(): Promise<ServiceOffering[]> {
    return (await this.ask(ServiceSubjects.offerings, {}, STATUS_TIMEOUT_MS * 2, validateServiceOfferingsReply, undefined)).services;
  }

  /** The node that took it. */
  async provision(request: ServiceProvisionRequest): Promise<string> {
    return (await this.ask(ServiceSubjects.provision, request, this.provisionMs, validateServiceProvisionReply, undefined)).node;
  }

  async deprovision(node: string, id: string): Promise<void> {
    await this.ask(ServiceSubjects.deprovision(node), { id }, this.requestMs, validateServiceOk, node);
  }

  async bind(node: string, id: string, app: AppRecord): Promise<ServiceBindReply> {
    const request = { id, app: app.id, ...(app.uid !== undefined ? { app_uid: app.uid } : {}) };
    return this.ask(ServiceSubjects.bind(node), request, this.requestMs, validateServiceBindReply, node);
  }

  async unbind(node: string, id: string, appId: string): Promise<void> {
    await this.ask(ServiceSubjects.unbind(node), { id, app: appId }, this.requestMs, validateServiceOk, node);
  }

  async status(node: string, ids: string[]): Promise<ServiceStatusReply> {
    return this.ask(ServiceSubjects.status(node), { ids }, STATUS_TIMEOUT_MS, validateServiceStatusReply, node);
  }

  /** `node` undefined: any services node (offerings, provisioning). */
  private async ask<T extends object>(subject: string, body: object, timeoutMs: number, validate: Validator<T | ServiceError>, node: string | undefined): Promise<T> {
    let reply: unknown;
    try {
      reply = await this.bus.request(subject, body, timeoutMs);
    } catch (err) {
      if (err instanceof BusRequestError && err.reason === 'no-responders') {
        throw new ServiceNodeError(node === undefined ? 'no services node is running' : `services node ${node} is not running`, 'unreachable');
      }
      const who = node === undefined ? 'the services node' : `services node ${node}`;
      if (err instanceof BusRequestError && err.reason === 'timeout') throw new ServiceNodeError(`${who} did not answer within ${Math.round(timeoutMs / 1000)} s`, 'timeout');
      throw new ServiceNodeError(`${who}: ${(err as Error).message}`, 'unreachable');
    }
    const checked = validate(reply);
    // The validators name fields, never values: a reply with credentials cannot leak through here.
    if (!checked.ok) throw new ServiceNodeError(`${node === undefined ? 'a services node' : `services node ${node}`} answered ${subject} oddly: ${checked.error}`, 'bad-reply');
    if (isServiceError(checked.value)) throw new ServiceNodeError(oneLine(checked.value.error), 'refused', checked.value.code);
    return checked.value as T;
  }
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 300);
}

/**
 * Bindings: asking the nodes, remembering what they granted, building the
 * `services` of dea.<uuid>.start, and the sweep that finishes what a
 * stopped controller left half-done.
 */
export class ServiceBindings {
  /** How long a step may be under way before the sweep takes it for left half-done (seconds): a provision request's longest wait. */
  private readonly graceSeconds: number;

  constructor(
    readonly store: ServiceStore,
    readonly broker: ServiceBroker,
    private readonly log: Logger,
    provisionTimeoutMs = 60_000,
  ) {
    this.graceSeconds = Math.ceil(provisionTimeoutMs / 1000);
  }

  /**
   * The app's binding to a service: the one granted already, else asked of
   * the service's node now (the same app gets the same credentials, so
   * asking twice is harmless) and remembered.
   */
  async bind(app: AppRecord, service: ServiceRecord): Promise<BindingRecord> {
    const known = await this.store.binding(app.id, service.id);
    if (known !== undefined) return known;
    if (service.state !== 'ready' || service.node === null) throw new ServiceNodeError(`service ${service.name} is ${describeState(service.state)}`, 'refused', 'in_progress');
    const granted = await this.broker.bind(service.node, service.id, app);
    const binding: BindingRecord = {
      app: app.id,
      service: service.id,
      credentials: granted.credentials as unknown as Record<string, unknown>,
      ...(granted.gid !== undefined ? { gid: granted.gid } : {}),
      created: nowSeconds(),
    };
    await this.store.putBinding(binding);
    this.log.info('app bound to a service', { app: app.name, service: service.name, node: service.node });
    return binding;
  }

  /** Revokes the app's access (node first, then the record: a failure leaves the record for the sweep to try again). */
  async unbind(appId: string, serviceId: string): Promise<void> {
    const service = await this.store.get(serviceId);
    if (service?.node) await this.broker.unbind(service.node, serviceId, appId);
    await this.store.deleteBinding(appId, serviceId);
    this.log.info('app unbound from a service', { droplet: appId, service: service?.name ?? serviceId });
  }

  /** Unbinds, logging instead of failing: what is left, the sweep retries. */
  async unbindQuietly(appId: string, serviceId: string): Promise<void> {
    await this.unbind(appId, serviceId).catch((err: unknown) =>
      this.log.warn('unbind failed; the reconcile pass tries again', { droplet: appId, service: serviceId, error: (err as Error).message }),
    );
  }

  /**
   * The `services` of the app's dea.<uuid>.start: each of its services with
   * the credentials granted, binding any not bound yet. A service that no
   * longer exists is left out; one that cannot be bound now is an error
   * (one line, for the app's placement_error): an instance started without
   * its database would only crash.
   */
  async servicesFor(app: AppRecord): Promise<{ services: ServiceBinding[] } | { error: string }> {
    const services: ServiceBinding[] = [];
    for (const id of app.services ?? []) {
      const service = await this.store.get(id);
      if (service === undefined) {
        this.log.warn('an app lists a service that no longer exists; left out', { app: app.name, service: id });
        continue;
      }
      let binding: BindingRecord;
      try {
        binding = await this.bind(app, service);
      } catch (err) {
        return { error: `service ${service.name} could not be bound: ${(err as Error).message}` };
      }
      services.push({
        name: service.name,
        label: service.service,
        plan: service.plan,
        tags: serviceTags(service.service),
        credentials: binding.credentials,
        ...(binding.gid !== undefined ? { gid: binding.gid } : {}),
      });
    }
    return { services };
  }

  /**
   * One pass over what a stopped controller (or an unreachable node) left
   * half-done; steps older than the grace only, so that a request in flight
   * is not taken for a leftover. Never throws.
   */
  async sweep(apps: AppRecord[]): Promise<void> {
    const now = nowSeconds();
    const settled = (since: number, grace = this.graceSeconds) => now - since >= grace;
    try {
      const services = await this.store.list();
      for (const service of services) {
        // Twice the longest wait: a provisioning asked again while the first request still ran could reach another node.
        if (service.state === 'provisioning' && settled(service.updated, 2 * this.graceSeconds)) await this.finishProvisioning(service);
        else if (service.state === 'deleting' && settled(service.updated)) {
          await this.finishDeleting(service).catch((err: unknown) =>
            this.log.warn('sweep: a service being deleted could not be deprovisioned yet', { service: service.name, node: service.node, error: (err as Error).message }),
          );
        }
      }
      const known = new Map(services.map((s) => [s.id, s]));
      const wanted = new Set(apps.flatMap((app) => (app.services ?? []).map((id) => bindingKey(app.id, id))));
      for (const binding of await this.store.bindings()) {
        if (wanted.has(bindingKey(binding.app, binding.service)) || !settled(binding.created)) continue;
        const service = known.get(binding.service);
        this.log.info('sweep: a binding no app wants any more is revoked', { droplet: binding.app, service: service?.name ?? binding.service });
        if (service === undefined) await this.store.deleteBinding(binding.app, binding.service);
        else await this.unbindQuietly(binding.app, binding.service);
      }
    } catch (err) {
      this.log.warn('service sweep failed; the next pass tries again', { error: (err as Error).message });
    }
  }

  private async finishProvisioning(service: ServiceRecord): Promise<void> {
    try {
      // Same id: a node that did it already answers ok without a second backend.
      const node = await this.broker.provision(provisionRequest(service));
      await this.store.update(service.id, (current) => (current.state === 'provisioning' ? { ...current, node, state: 'ready', updated: nowSeconds() } : undefined));
      this.log.info('sweep: a service left provisioning is ready', { service: service.name, node });
    } catch (err) {
      if (err instanceof ServiceNodeError && err.kind === 'refused') {
        this.log.warn('sweep: a service left provisioning was refused by its node; forgotten', { service: service.name, error: err.message });
        await this.store.remove(service);
        return;
      }
      this.log.warn('sweep: a service left provisioning could not be finished yet', { service: service.name, error: (err as Error).message });
    }
  }

  async finishDeleting(service: ServiceRecord): Promise<void> {
    if (service.node !== null) await this.broker.deprovision(service.node, service.id);
    for (const binding of await this.store.bindings()) if (binding.service === service.id) await this.store.deleteBinding(binding.app, binding.service);
    await this.store.remove(service);
    this.log.info('service deleted', { service: service.name, node: service.node });
  }
}

export function provisionRequest(service: ServiceRecord): ServiceProvisionRequest {
  return { id: service.id, service: service.service, plan: service.plan, name: service.name, owner: service.owner };
}

export function describeState(state: ServiceState): string {
  return state === 'provisioning' ? 'still being created' : state === 'deleting' ? 'being deleted' : 'ready';
}
