// Opening a KV bucket or an object store creates its stream when it is
// missing. Roles that start together on a fresh JetStream (the controller
// and the health manager under `skiff up`, two controllers side by side)
// race for that, and the loser is refused ("subjects overlap with an
// existing stream", "stream name already in use") for a stream that exists
// by then: opening it again binds to it.

import type { JetStreamClient, KV, KvEntry, KvOptions, ObjectStore } from 'nats';

const CREATE_RACE = /subjects overlap|already in use/i;

/** A KV bucket, created when missing; every role opens its buckets through here. */
export function openKv(js: JetStreamClient, name: string, options?: Partial<KvOptions>): Promise<KV> {
  return openBucket(() => js.views.kv(name, options));
}

/** An object store, created when missing. */
export function openObjectStore(js: JetStreamClient, name: string): Promise<ObjectStore> {
  return openBucket(() => js.views.os(name));
}

export async function openBucket<T>(open: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await open();
    } catch (error) {
      if (attempt >= attempts || !CREATE_RACE.test(String((error as Error)?.message ?? error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
  }
}

/** A KV entry that holds a value: not absent, deleted or purged. */
export function isLive(entry: KvEntry | null): entry is KvEntry {
  return entry !== null && entry.operation === 'PUT';
}

/**
 * A compare-and-set lost to another writer: kv.create on a key that is live
 * ("key exists", or JetStream's error 10071), kv.update with a revision that
 * moved on ("wrong last sequence").
 */
export function isRevisionConflict(err: unknown): boolean {
  const code = (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
  if (code === 10071) return true;
  return /wrong last sequence|key exists/i.test(err instanceof Error ? err.message : String(err));
}
