import { normalizeHost } from '../registry/lookup';
import type { Registry } from '../registry/registry';
import type { Backend } from '../route/backend';
import { Endpoint, OVERLOADED, type EndpointPool, type LbAlgorithm, type PickLimits } from '../route/pool';
import type { RouterStats } from '../varz/varz';
import { parseAppInstance } from './request_head';
import { RouterErrorKind } from './router_error';
import { affinityEndpoint, stickyInstance } from './sticky';

/** The settings the choice reads; the proxy's settings object, changed live by the config store. */
export interface ChoiceSettings {
  lbAlgorithm: LbAlgorithm;
  coolDownMs: number;
  maxConnsPerBackend: number;
  sessionCookies: readonly string[];
}

/**
 * Look up and pick, shared by HTTP requests and WebSocket upgrades: the route
 * for a Host and path, then the pinned instance (X-Cf-App-Instance), the
 * sticky one (__VCAP_ID__), or the balancer's choice. choose() answers an
 * Endpoint or the RouterErrorKind to answer with; the chosen pool is left in
 * `pool` and, on a route with session affinity, the instance the request's
 * __VCAP_ID__ named in `named` (read both at once: the next request
 * overwrites them), so choosing allocates nothing.
 */
export class EndpointChooser {
  pool: EndpointPool | undefined;
  /**
   * Route with session affinity only: the registered endpoint the request's
   * __VCAP_ID__ names, whether or not it was chosen; null when it names none.
   * A response from any other endpoint sets the cookie anew.
   */
  named: Endpoint | null = null;
  private readonly limits: PickLimits = { now: 0, coolDownMs: 0, maxConnsPerBackend: 0 };

  constructor(
    private readonly registry: Registry,
    private readonly settings: ChoiceSettings,
    private readonly stats: RouterStats,
  ) {}

  choose(hostHeader: string, path: string, appInstanceHeader: string, cookieHeader: string): Endpoint | RouterErrorKind {
    this.pool = undefined;
    this.named = null;
    const host = normalizeHost(hostHeader);
    if (host === '') return RouterErrorKind.EmptyHost;
    const pool = this.registry.lookup(host, path);
    if (pool === undefined) return RouterErrorKind.UnknownRoute;
    if (pool.endpoints.length === 0) return RouterErrorKind.NoEndpoints;
    this.pool = pool;
    if (pool.sessionAffinity && cookieHeader !== '') this.named = affinityEndpoint(cookieHeader, pool.endpoints) ?? null;

    let endpoint: Endpoint | typeof OVERLOADED | undefined;
    if (appInstanceHeader !== '') {
      const pin = parseAppInstance(appInstanceHeader);
      if (pin === undefined) return RouterErrorKind.InvalidAppInstanceHeader;
      endpoint = pool.findInstance(pin.appId, pin.index);
      if (endpoint === undefined) return RouterErrorKind.UnknownInstance;
      // A pinned instance has the same limit as any other; there is no other to fall back to.
      if (endpoint.backend.inFlight >= this.settings.maxConnsPerBackend) endpoint = OVERLOADED;
    } else {
      const stuck = pool.sessionAffinity ? this.usable(this.named) : this.sticky(pool, cookieHeader);
      endpoint = stuck ?? pool.pick(pool.algorithm ?? this.settings.lbAlgorithm, this.pickLimits(), null);
    }
    if (endpoint === OVERLOADED) {
      this.stats.connectionLimitRejections++;
      return RouterErrorKind.ConnectionLimit;
    }
    return endpoint ?? RouterErrorKind.NoEndpoints;
  }

  /** Another endpoint of `pool` for a retry, never one of `tried`. */
  retry(pool: EndpointPool, tried: readonly Backend[]): Endpoint | undefined {
    const picked = pool.pick(pool.algorithm ?? this.settings.lbAlgorithm, this.pickLimits(), tried);
    return picked instanceof Endpoint ? picked : undefined;
  }

  /** The instance a sticky session points at, while it is registered and can take the request. */
  private sticky(pool: EndpointPool, cookieHeader: string): Endpoint | undefined {
    if (cookieHeader === '') return undefined;
    const instance = stickyInstance(cookieHeader, this.settings.sessionCookies);
    if (instance === undefined) return undefined;
    return this.usable(pool.findInstanceId(instance));
  }

  /** A stuck-to endpoint, unless it is full or failing: the request then goes to another one. */
  private usable(endpoint: Endpoint | null | undefined): Endpoint | undefined {
    if (endpoint === null || endpoint === undefined) return undefined;
    const backend = endpoint.backend;
    const limits = this.pickLimits();
    if (backend.inFlight >= limits.maxConnsPerBackend || backend.isCoolingDown(limits.now, limits.coolDownMs)) return undefined;
    return endpoint;
  }

  /** Refreshed before each pick rather than allocated: settings may change live. */
  private pickLimits(): PickLimits {
    const limits = this.limits;
    limits.now = Date.now();
    limits.coolDownMs = this.settings.coolDownMs;
    limits.maxConnsPerBackend = this.settings.maxConnsPerBackend;
    return limits;
  }
}
