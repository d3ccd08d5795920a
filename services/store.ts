// The services nodes' records in JetStream (SERVICES_BUCKET): instance id
// -> InstanceRecord. A record is written before anything of the instance
// exists and removed after everything of it is gone, with the step under
// way in `state` (and in each binding's), so that a node that stops
// half-way finds at its next start what it was doing, and finishes it.
// Records hold no secret: passwords stay in the node's data dir
// (secrets.ts), where the backends are anyway, and out of a bucket that
// every NATS server of the cluster keeps and the controller reads.

import type { KV } from 'nats';
import { isLive, isRevisionConflict } from '../bus/jetstream';
import type { ServiceLabel } from '../bus/platform';

export type InstanceState = 'provisioning' | 'ready' | 'deprovisioning';
export type BindingState = 'binding' | 'bound' | 'unbinding';

export interface BindingRecord {
  state: BindingState;
  app_uid?: number;
  /** Epoch seconds of the last change. */
  since: number;
}

export interface InstanceRecord {
  id: string;
  service: ServiceLabel;
  plan: string;
  name: string;
  owner: string;
  /** The node that holds it (NODE_NAME). */
  node: string;
  state: InstanceState;
  /** redis: the redis-server's port. */
  port?: number;
  /** redis: the redis-server's uid; filesystem: the directory's gid (from --service-ids). */
  sid?: number;
  /** By app id. */
  bindings: Record<string, BindingRecord>;
  /** Epoch seconds. */
  created: number;
  updated: number;
}

export interface Stored {
  record: InstanceRecord;
  revision: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class InstanceStore {
  constructor(private readonly kv: KV) {}

  async get(id: string): Promise<Stored | undefined> {
    const entry = await this.kv.get(id);
    if (!isLive(entry)) return undefined;
    return { record: parseRecord(decoder.decode(entry.value)), revision: entry.revision };
  }

  /** Creates the record; undefined when another writer created it first. */
  async create(record: InstanceRecord): Promise<Stored | undefined> {
    try {
      const revision = await this.kv.create(record.id, encoder.encode(JSON.stringify(record)));
      return { record, revision };
    } catch (error) {
      if (isRevisionConflict(error)) return undefined;
      throw error;
    }
  }

  /** Writes `record` over the revision read; throws on a conflict (someone else changed it). */
  async update(stored: Stored, record: InstanceRecord): Promise<Stored> {
    record.updated = Math.floor(Date.now() / 1000);
    const revision = await this.kv.update(record.id, encoder.encode(JSON.stringify(record)), stored.revision);
    return { record, revision };
  }

  async remove(id: string): Promise<void> {
    await this.kv.purge(id);
  }

  /** Every record of the bucket (every node's). */
  async all(): Promise<InstanceRecord[]> {
    const ids: string[] = [];
    for await (const key of await this.kv.keys()) ids.push(key);
    const records: InstanceRecord[] = [];
    for (const id of ids) {
      const stored = await this.get(id).catch(() => undefined);
      if (stored) records.push(stored.record);
    }
    return records;
  }
}

function parseRecord(text: string): InstanceRecord {
  const record = JSON.parse(text) as InstanceRecord;
  record.bindings ??= {};
  return record;
}
