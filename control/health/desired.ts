// Desired state, read straight from the controller's apps bucket (bus/platform.ts
// APPS_BUCKET) rather than asked of a controller: a read needs no controller
// up, sees what every controller wrote, and costs one KV listing per pass.
// Only the fields of AppDesiredState are read; a record that lacks them is
// skipped and counted, never fatal.

import type { KV, KvEntry } from 'nats';
import { checkAutoscalePolicy } from '../../bus/autoscale';
import type { Bus } from '../../bus/connection';
import { APPS_BUCKET, type AppDesiredState } from '../../bus/platform';
import { openKv, storedKeys } from '../../bus/jetstream';

export function readAppRecord(value: unknown): AppDesiredState | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'record must be an object';
  const r = value as Record<string, unknown>;
  if (typeof r.id !== 'string' || r.id === '') return 'id must be a non-empty string';
  if (r.state !== 'STARTED' && r.state !== 'STOPPED') return 'state must be STARTED or STOPPED';
  if (typeof r.instances !== 'number' || !Number.isInteger(r.instances) || r.instances < 0) return 'instances must be an integer >= 0';
  if (r.droplet !== null && (typeof r.droplet !== 'string' || r.droplet === '')) return 'droplet must be a string or null';
  if (typeof r.run_count !== 'number' || !Number.isInteger(r.run_count) || r.run_count < 0) return 'run_count must be an integer >= 0';
  if (typeof r.last_updated !== 'number' || !Number.isFinite(r.last_updated)) return 'last_updated must be a number';
  // A policy that fails the rules (written around the API) is no policy: the app keeps its count.
  const policy = r.autoscale === undefined || r.autoscale === null ? undefined : checkAutoscalePolicy(r.autoscale);
  return {
    ...(policy?.ok ? { autoscale: policy.value } : {}),
    id: r.id,
    name: typeof r.name === 'string' ? r.name : r.id,
    state: r.state,
    instances: r.instances,
    droplet: r.droplet as string | null,
    run_count: r.run_count,
    last_updated: r.last_updated,
  };
}

export class DesiredState {
  private constructor(private readonly kv: KV) {}

  static async open(bus: Bus, timeoutMs = 10_000): Promise<DesiredState> {
    try {
      const js = bus.nats.jetstream({ timeout: timeoutMs });
      const kv = await openKv(js, APPS_BUCKET, { history: 1 });
      return new DesiredState(kv);
    } catch (err) {
      throw new Error(`cannot open the apps bucket ${APPS_BUCKET} (is nats-server running with -js?): ${(err as Error).message}`, { cause: err });
    }
  }

  /** Every app, with the keys of records that could not be read. */
  async list(): Promise<{ apps: AppDesiredState[]; unreadable: Array<{ key: string; error: string }> }> {
    const keys = await storedKeys(this.kv);
    const entries = await Promise.all(keys.map((key) => this.kv.get(key)));
    const apps: AppDesiredState[] = [];
    const unreadable: Array<{ key: string; error: string }> = [];
    entries.forEach((entry: KvEntry | null, i) => {
      if (entry === null || entry.operation !== 'PUT') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder().decode(entry.value));
      } catch {
        unreadable.push({ key: keys[i]!, error: 'not JSON' });
        return;
      }
      const app = readAppRecord(parsed);
      if (typeof app === 'string') unreadable.push({ key: keys[i]!, error: app });
      else apps.push(app);
    });
    return { apps, unreadable };
  }
}
