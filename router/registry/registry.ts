import { LRUCache } from 'lru-cache';
import type { RouterRegister } from '../../bus/messages';
import { Backend, backendKey } from '../route/backend';
import { Endpoint, EndpointPool, parseLbAlgorithm } from '../route/pool';
import { contextPathCovers, nextWildcard, parseRouteUri } from './lookup';

export interface RegistryOptions {
  /** Used when a register message carries no stale_threshold_in_seconds. */
  defaultStaleThresholdMs: number;
  /**
   * How long a route whose last endpoint was unregistered keeps answering
   * 503 no_endpoints (an app being restarted) before it is forgotten (404).
   */
  emptyPoolTtlMs: number;
  /** Epoch ms now, for the empty-route expiry at lookup; Date.now unless a test sets it. */
  clock?: () => number;
  /** Called when no route references a backend any more (close its idle sockets). */
  onBackendRemoved?: (backend: Backend) => void;
  /** Host resolutions (wildcards, misses) kept in the LRU cache. */
  cacheSize?: number;
}

export interface RouteSnapshotEntry {
  address: string;
  app_id?: string;
  private_instance_id?: string;
  private_instance_index?: string;
  tags?: Record<string, string>;
  /** Present (true) when the endpoint registered with options.session_affinity. */
  session_affinity?: true;
  ttl: number;
  in_flight: number;
}

/**
 * The routing table: host -> context-path pools -> endpoints. Fed by
 * router.register / router.unregister, read on every request.
 */
export class Registry {
  /** Pools of one host, longest context path first. */
  private readonly hosts = new Map<string, EndpointPool[]>();
  private readonly backends = new Map<string, Backend>();
  /**
   * Resolutions that needed the wildcard walk (hits and misses). Cleared
   * whenever a host appears or disappears, the only changes that can alter
   * a resolution; refreshing or adding endpoints of existing pools cannot.
   */
  private readonly resolved: LRUCache<string, EndpointPool[] | false>;
  private endpointTotal = 0;
  /** Epoch ms of the last register/unregister that was applied. */
  lastUpdateAt = 0;

  constructor(private readonly options: RegistryOptions) {
    this.resolved = new LRUCache({ max: options.cacheSize ?? 10_000 });
  }

  get routeCount(): number {
    let n = 0;
    for (const pools of this.hosts.values()) n += pools.length;
    return n;
  }

  get endpointCount(): number {
    return this.endpointTotal;
  }

  register(msg: RouterRegister, now: number): void {
    const key = backendKey(msg.host, msg.port);
    const staleMs =
      msg.stale_threshold_in_seconds !== undefined
        ? msg.stale_threshold_in_seconds * 1000
        : this.options.defaultStaleThresholdMs;
    const appId = msg.app ?? '';
    const instanceId = msg.private_instance_id ?? '';
    const index = msg.private_instance_index ?? (msg.index !== undefined ? String(msg.index) : '');
    const algorithm = parseLbAlgorithm(msg.options?.loadbalancing);
    const affinity = msg.options?.session_affinity === true;
    for (const uri of msg.uris) {
      const parsed = parseRouteUri(uri);
      if (parsed === undefined) continue;
      const pool = this.poolFor(parsed.host, parsed.path, true)!;
      if (algorithm !== undefined) pool.algorithm = algorithm;
      const existing = pool.find(key);
      if (existing !== undefined) {
        existing.setIdentity(appId, instanceId, index);
        existing.tags = msg.tags;
        existing.staleThresholdMs = staleMs;
        existing.updatedAt = now;
        pool.setAffinity(existing, affinity);
        continue;
      }
      const endpoint = new Endpoint(this.retainBackend(msg.host, msg.port, key), appId, instanceId, index, msg.tags, staleMs, now);
      endpoint.sessionAffinity = affinity;
      pool.add(endpoint);
      this.endpointTotal++;
    }
    this.lastUpdateAt = now;
  }

  unregister(msg: RouterRegister, now: number): void {
    const key = backendKey(msg.host, msg.port);
    for (const uri of msg.uris) {
      const parsed = parseRouteUri(uri);
      if (parsed === undefined) continue;
      const pool = this.poolFor(parsed.host, parsed.path, false);
      if (pool === undefined) continue;
      const removed = pool.remove(key, now);
      if (removed !== undefined) this.releaseEndpoint(removed);
    }
    this.lastUpdateAt = now;
  }

  /**
   * The pool serving a request, or undefined for an unknown route.
   * `host` must already be normalised (normalizeHost).
   */
  lookup(host: string, path: string): EndpointPool | undefined {
    let pools = this.hosts.get(host);
    if (pools === undefined) {
      const cached = this.resolved.get(host);
      if (cached === false) return undefined;
      pools = cached ?? this.resolveWildcard(host);
      if (pools === undefined) return undefined;
    }
    // Most hosts have a single root route: no path work at all.
    if (pools.length === 1 && pools[0].contextPath === '') return this.live(pools[0]);
    const lowered = path.toLowerCase();
    for (const pool of pools) {
      // An expired empty route no longer covers its paths: a shorter one may.
      if (contextPathCovers(pool.contextPath, lowered) && this.live(pool) !== undefined) return pool;
    }
    return undefined;
  }

  /**
   * A route whose last endpoint left answers 503 for emptyPoolTtlMs (an
   * instance restarting), then counts as unknown (404: the app was stopped)
   * until prune removes it.
   */
  private live(pool: EndpointPool): EndpointPool | undefined {
    if (pool.endpoints.length > 0 || (this.options.clock ?? Date.now)() - pool.emptySince < this.options.emptyPoolTtlMs) return pool;
    return undefined;
  }

  /**
   * Removes endpoints not re-registered within their stale threshold, and
   * routes that stayed empty longer than emptyPoolTtlMs. Returns how many
   * endpoints went.
   */
  prune(now: number): number {
    let pruned = 0;
    for (const [host, pools] of this.hosts) {
      for (let i = pools.length - 1; i >= 0; i--) {
        const pool = pools[i];
        const list = pool.endpoints;
        for (let j = list.length - 1; j >= 0; j--) {
          if (!list[j].isStale(now)) continue;
          const removed = pool.remove(list[j].backend.key, now);
          if (removed !== undefined) {
            this.releaseEndpoint(removed);
            pruned++;
          }
        }
        if (pool.endpoints.length === 0 && now - pool.emptySince >= this.options.emptyPoolTtlMs) {
          pools.splice(i, 1);
        }
      }
      if (pools.length === 0) {
        this.hosts.delete(host);
        this.forgetResolutions();
      }
    }
    return pruned;
  }

  /** Restarts every endpoint's stale clock (after NATS comes back: owners could not re-register meanwhile). */
  refreshAll(now: number): void {
    for (const pools of this.hosts.values())
      for (const pool of pools) for (const e of pool.endpoints) e.updatedAt = now;
  }

  /** The table as gorouter's /routes shows it: uri -> endpoints. */
  snapshot(now: number): Record<string, RouteSnapshotEntry[]> {
    const out: Record<string, RouteSnapshotEntry[]> = {};
    for (const [host, pools] of this.hosts) {
      for (const pool of pools) {
        out[host + pool.contextPath] = pool.endpoints.map((e) => ({
          address: e.backend.key,
          app_id: e.appId || undefined,
          private_instance_id: e.instanceId || undefined,
          private_instance_index: e.instanceIndex || undefined,
          tags: e.tags,
          session_affinity: e.sessionAffinity ? true : undefined,
          ttl: Math.max(0, Math.round((e.staleThresholdMs - (now - e.updatedAt)) / 1000)),
          in_flight: e.backend.inFlight,
        }));
      }
    }
    return out;
  }

  /**
   * Every endpoint as a register message that recreates it (its remaining
   * lifetime as the stale threshold): how a `--threads` worker thread starts
   * with the first thread's table.
   */
  registrations(now: number): RouterRegister[] {
    const out: RouterRegister[] = [];
    for (const [host, pools] of this.hosts) {
      for (const pool of pools) {
        const uris = [host + pool.contextPath];
        const loadbalancing = pool.algorithm;
        for (const e of pool.endpoints) {
          const msg: RouterRegister = {
            host: e.backend.host,
            port: e.backend.port,
            uris,
            stale_threshold_in_seconds: Math.max(0.001, (e.staleThresholdMs - (now - e.updatedAt)) / 1000),
          };
          if (e.appId !== '') msg.app = e.appId;
          if (e.instanceId !== '') msg.private_instance_id = e.instanceId;
          if (e.instanceIndex !== '') msg.private_instance_index = e.instanceIndex;
          if (e.tags !== undefined) msg.tags = e.tags;
          if (loadbalancing !== undefined || e.sessionAffinity) {
            msg.options = {};
            if (loadbalancing !== undefined) msg.options.loadbalancing = loadbalancing;
            if (e.sessionAffinity) msg.options.session_affinity = true;
          }
          out.push(msg);
        }
      }
    }
    return out;
  }

  private resolveWildcard(host: string): EndpointPool[] | undefined {
    let candidate = nextWildcard(host);
    while (candidate !== undefined) {
      const pools = this.hosts.get(candidate);
      if (pools !== undefined) {
        this.resolved.set(host, pools);
        return pools;
      }
      candidate = nextWildcard(candidate);
    }
    this.resolved.set(host, false);
    return undefined;
  }

  /** lru-cache's clear() walks its whole capacity: skip it when nothing is cached (route floods). */
  private forgetResolutions(): void {
    if (this.resolved.size > 0) this.resolved.clear();
  }

  private poolFor(host: string, path: string, create: boolean): EndpointPool | undefined {
    let pools = this.hosts.get(host);
    if (pools === undefined) {
      if (!create) return undefined;
      pools = [];
      this.hosts.set(host, pools);
      this.forgetResolutions();
    }
    for (const pool of pools) if (pool.contextPath === path) return pool;
    if (!create) return undefined;
    const pool = new EndpointPool(host, path);
    // Longest context path first, so the first covering pool is the most specific.
    let at = 0;
    while (at < pools.length && pools[at].contextPath.length >= path.length) at++;
    pools.splice(at, 0, pool);
    return pool;
  }

  private retainBackend(host: string, port: number, key: string): Backend {
    let backend = this.backends.get(key);
    if (backend === undefined) {
      backend = new Backend(host, port);
      this.backends.set(key, backend);
    }
    backend.refs++;
    return backend;
  }

  private releaseEndpoint(endpoint: Endpoint): void {
    this.endpointTotal--;
    const backend = endpoint.backend;
    if (--backend.refs > 0) return;
    this.backends.delete(backend.key);
    this.options.onBackendRemoved?.(backend);
  }
}
