import type { Backend } from './backend';

export type LbAlgorithm = 'round-robin' | 'least-connection';
export const LB_ALGORITHMS: readonly LbAlgorithm[] = ['round-robin', 'least-connection'];

export function parseLbAlgorithm(value: unknown): LbAlgorithm | undefined {
  return typeof value === 'string' && (LB_ALGORITHMS as readonly string[]).includes(value)
    ? (value as LbAlgorithm)
    : undefined;
}

/** One registration of a backend under one route, with the metadata of its register message. */
export class Endpoint {
  /** The X-CF-* request header lines for this instance, built once per registration change. */
  headerLines = '';
  appId = '';
  instanceId = '';
  instanceIndex = '';
  /** Registered with options.session_affinity; changed through its pool's setAffinity. */
  sessionAffinity = false;

  constructor(
    readonly backend: Backend,
    appId: string,
    instanceId: string,
    instanceIndex: string,
    public tags: Record<string, string> | undefined,
    public staleThresholdMs: number,
    public updatedAt: number,
  ) {
    this.setIdentity(appId, instanceId, instanceIndex);
  }

  setIdentity(appId: string, instanceId: string, instanceIndex: string): void {
    if (this.headerLines !== '' && appId === this.appId && instanceId === this.instanceId && instanceIndex === this.instanceIndex)
      return;
    this.appId = appId;
    this.instanceId = instanceId;
    this.instanceIndex = instanceIndex;
    this.headerLines =
      (appId ? `x-cf-applicationid: ${headerSafe(appId)}\r\n` : '') +
      (instanceIndex ? `x-cf-instanceindex: ${headerSafe(instanceIndex)}\r\n` : '') +
      (instanceId ? `x-cf-instanceid: ${headerSafe(instanceId)}\r\n` : '');
  }

  isStale(now: number): boolean {
    return now - this.updatedAt > this.staleThresholdMs;
  }
}

/** Register messages come from the bus, not from users, but must still never inject header lines. */
function headerSafe(value: string): string {
  return value.replace(/[\x00-\x1f\x7f]/g, '');
}

/** Returned by pick when endpoints exist but every eligible one is at its connection limit. */
export const OVERLOADED = Symbol('overloaded');

export interface PickLimits {
  now: number;
  coolDownMs: number;
  maxConnsPerBackend: number;
}

/** The endpoints of one route (host + context path) and how requests are spread over them. */
export class EndpointPool {
  readonly endpoints: Endpoint[] = [];
  /** Per-route algorithm from the register message's options; overrides the router default. */
  algorithm: LbAlgorithm | undefined;
  /** Epoch ms when the last endpoint left; 0 while the pool has endpoints. */
  emptySince = 0;
  /**
   * Clients are pinned by __VCAP_ID__ alone (session affinity): true while
   * any endpoint registered with options.session_affinity. Any, not the
   * latest register message: while the owners of a route disagree (a DEA
   * that has not yet applied a dea.update), the route must not flip at
   * every register interval.
   */
  sessionAffinity = false;
  private affinityEndpoints = 0;
  private cursor = Math.floor(Math.random() * 1_000_000);

  constructor(
    readonly host: string,
    readonly contextPath: string,
  ) {}

  find(backendKey: string): Endpoint | undefined {
    for (const e of this.endpoints) if (e.backend.key === backendKey) return e;
    return undefined;
  }

  add(endpoint: Endpoint): void {
    this.endpoints.push(endpoint);
    this.emptySince = 0;
    if (endpoint.sessionAffinity) this.countAffinity(1);
  }

  remove(backendKey: string, now: number): Endpoint | undefined {
    const i = this.endpoints.findIndex((e) => e.backend.key === backendKey);
    if (i === -1) return undefined;
    const [removed] = this.endpoints.splice(i, 1);
    if (this.endpoints.length === 0) this.emptySince = now;
    if (removed.sessionAffinity) this.countAffinity(-1);
    return removed;
  }

  /** Whether `endpoint`, one of this pool's, asked for session affinity in its latest registration. */
  setAffinity(endpoint: Endpoint, on: boolean): void {
    if (endpoint.sessionAffinity === on) return;
    endpoint.sessionAffinity = on;
    if (this.endpoints.includes(endpoint)) this.countAffinity(on ? 1 : -1);
  }

  private countAffinity(delta: number): void {
    this.affinityEndpoints += delta;
    this.sessionAffinity = this.affinityEndpoints > 0;
  }

  /** The endpoint of instance `index` of app `appId` (X-Cf-App-Instance). */
  findInstance(appId: string, index: string): Endpoint | undefined {
    for (const e of this.endpoints) if (e.appId === appId && e.instanceIndex === index) return e;
    return undefined;
  }

  /** The endpoint whose private_instance_id is `instanceId` (sticky sessions). */
  findInstanceId(instanceId: string): Endpoint | undefined {
    for (const e of this.endpoints) if (e.instanceId === instanceId) return e;
    return undefined;
  }

  /**
   * Chooses an endpoint for the next attempt. Backends in `exclude` (already
   * tried for this request) are never chosen; backends at their connection
   * limit are skipped; backends that failed within the cool-down are used
   * only when no healthy one is left.
   */
  pick(
    algorithm: LbAlgorithm,
    limits: PickLimits,
    exclude: readonly Backend[] | null,
  ): Endpoint | typeof OVERLOADED | undefined {
    const list = this.endpoints;
    const n = list.length;
    if (n === 0) return undefined;
    const start = this.cursor++ % n;
    if (this.cursor > 0x3fffffff) this.cursor = 0;
    let coolingFallback: Endpoint | undefined;
    let best: Endpoint | undefined;
    let sawFull = false;
    for (let k = 0; k < n; k++) {
      const e = list[(start + k) % n];
      const b = e.backend;
      if (exclude !== null && exclude.includes(b)) continue;
      if (b.inFlight >= limits.maxConnsPerBackend) {
        sawFull = true;
        continue;
      }
      if (b.isCoolingDown(limits.now, limits.coolDownMs)) {
        if (coolingFallback === undefined || b.failedAt < coolingFallback.backend.failedAt) coolingFallback = e;
        continue;
      }
      if (algorithm === 'round-robin') return e;
      if (best === undefined || b.inFlight < best.backend.inFlight) best = e;
    }
    if (best !== undefined) return best;
    if (coolingFallback !== undefined) return coolingFallback;
    return sawFull ? OVERLOADED : undefined;
  }
}
