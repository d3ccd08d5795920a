// Opening a KV bucket or an object store creates its stream when it is
// missing. Roles that start together on a fresh JetStream (the controller
// and the health manager under `skiff up`, two controllers side by side)
// race for that, and the loser is refused ("subjects overlap with an
// existing stream", "stream name already in use") for a stream that exists
// by then: opening it again binds to it.

import type { JetStreamClient, KV, KvOptions, ObjectStore } from 'nats';

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
