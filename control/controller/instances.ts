// Talking to DEAs about an app's instances: placing (dea.<uuid>.start),
// stopping, changing uris, and finding what runs (dea.find.droplet).

import { requestAll, type Bus } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import type { DeaDiscoverReply, DeaFindDroplet, DeaFindDropletReply, DeaStartRequest, DeaStop, ServiceBinding } from '../../bus/messages';
import { Subjects } from '../../bus/subjects';
import { RejectionCounter, validateDeaDiscoverReply, validateDeaFindDropletReply } from '../../bus/validate';
import type { DeaPool } from './placement';
import { sessionAffinity } from './desired';
import { appVersion, type AppRecord } from './store';

export const DEFAULT_FDS = 256;

/** `services`: the app's bound services with their credentials (services.ts servicesFor): a secret message, never logged. */
export function startMessage(app: AppRecord, index: number, flapping: boolean, services: ServiceBinding[] = []): DeaStartRequest {
  const version = appVersion(app);
  if (app.droplet === null || app.staging === null || version === null) throw new Error(`app ${app.name} has no droplet`);
  return {
    droplet: app.id,
    index,
    name: app.name,
    uris: app.uris,
    runtime: app.staging.runtime,
    sha1: app.droplet,
    version,
    limits: { mem: app.memory, disk: app.disk, fds: DEFAULT_FDS },
    env: Object.entries(app.env).map(([key, value]) => `${key}=${value}`),
    services,
    users: [app.owner],
    flapping,
    start_command: app.command ?? app.staging.command,
    ...(app.droplet_object !== null && app.droplet_object !== app.droplet ? { droplet_object: app.droplet_object } : {}),
    ...(app.uid !== undefined ? { uid: app.uid } : {}),
    ...(sessionAffinity(app) ? { session_affinity: true } : {}),
  };
}

export class Instances {
  readonly rejections: RejectionCounter;

  constructor(
    private readonly bus: Bus,
    private readonly pool: DeaPool,
    private readonly log: Logger,
    private readonly findWindowMs: number,
  ) {
    this.rejections = new RejectionCounter(log);
  }

  /**
   * Places each index on a DEA (one in `avoid` only when no other fits);
   * returns the DEA chosen for each index, the indices that found none, and
   * why (for the app's placement_error).
   */
  async start(app: AppRecord, indices: number[], flapping = false, services: ServiceBinding[] = [], avoid?: ReadonlySet<string>): Promise<{ placed: Map<number, string>; unplaced: number[]; why?: string }> {
    const placed = new Map<number, string>();
    const unplaced: number[] = [];
    let why: string | undefined;
    for (const index of indices) {
      const message = startMessage(app, index, flapping, services);
      const request = { appId: app.id, runtime: message.runtime, memoryMb: app.memory };
      const dea = this.pool.choose(request, Date.now(), avoid) ?? (await this.discover(message));
      if (dea === undefined) {
        unplaced.push(index);
        why ??= this.pool.whyNot(request, Date.now());
        continue;
      }
      this.bus.publish(Subjects.deaInstanceStart(dea), message);
      placed.set(index, dea);
      this.log.info('instance placed', { app: app.name, droplet: app.id, index, version: message.version, dea });
    }
    if (unplaced.length > 0) {
      this.log.warn('no DEA with room for instances', { app: app.name, indices: unplaced.join(','), memory_mb: app.memory, runtime: app.staging?.runtime, why });
    }
    return { placed, unplaced, why };
  }

  /** CF v1's fallback when no advertisement is known: ask, and take the first (least loaded) DEA that answers. */
  private async discover(message: DeaStartRequest): Promise<string | undefined> {
    const replies = await requestAll(this.bus, Subjects.deaDiscover, {
      droplet: message.droplet,
      limits: message.limits,
      runtime: message.runtime,
      sha: message.sha1,
    }, { windowMs: 2000, max: 1, logger: this.log });
    for (const reply of replies) {
      const checked = validateDeaDiscoverReply(reply);
      if (checked.ok) return (checked.value as DeaDiscoverReply).id;
      this.rejections.reject(Subjects.deaDiscover, checked.error);
    }
    return undefined;
  }

  stop(filter: DeaStop): void {
    this.bus.publish(Subjects.deaStop, filter);
    this.log.info('instances stopped', { droplet: filter.droplet, indices: filter.indices?.join(','), instances: filter.instances?.join(',') });
  }

  /** Running instances take the app's uris and session affinity, and register again. */
  updateRoutes(app: AppRecord): void {
    this.bus.publish(Subjects.deaUpdate, { droplet: app.id, uris: app.uris, session_affinity: sessionAffinity(app) });
  }

  async find(filter: DeaFindDroplet): Promise<DeaFindDropletReply[]> {
    const replies = await requestAll(this.bus, Subjects.deaFindDroplet, filter, { windowMs: this.findWindowMs, logger: this.log });
    const found: DeaFindDropletReply[] = [];
    for (const reply of replies) {
      const checked = validateDeaFindDropletReply(reply);
      if (checked.ok) found.push(checked.value);
      else this.rejections.reject(Subjects.deaFindDroplet, checked.error);
    }
    return found;
  }
}
