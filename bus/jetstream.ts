// Opening a KV bucket or an object store creates its stream when it is
// missing. Roles that start together on a fresh JetStream (the controller
// and the health manager under `skiff up`, two controllers side by side)
// race for that, and the loser is refused ("subjects overlap with an
// existing stream", "stream name already in use") for a stream that exists
// by then: opening it again binds to it.

import type { JetStreamClient, JetStreamManager, KV, KvEntry, KvOptions, ObjectStore } from 'nats';

const CREATE_RACE = /subjects overlap|already in use/i;

/**
 * A KV bucket, created when missing; every role opens its buckets through here.
 *
 * Its reads go to the stream's leader (STREAM.MSG.GET), not to any replica
 * (DIRECT.GET, a queue group of the replicas' servers): when a server is cut
 * off without a reset, the others keep sending it its share of direct gets
 * until they notice the route is dead (30-60 s with nats-server 2.9, which
 * lost about half the controller's reads meanwhile), whereas a leader that
 * was there is replaced within seconds. A leader's read is never stale either.
 */
export function openKv(js: JetStreamClient, name: string, options?: Partial<KvOptions>): Promise<KV> {
  return openBucket(() => js.views.kv(name, { allow_direct: false, ...options }));
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

/** What a nats.js KV bucket (its Bucket class) keeps beside the KV interface. */
interface BucketInternals {
  jsm: JetStreamManager;
  stream: string;
  prefixLen: number;
  fullKeyName(key: string): string;
}

function internals(kv: KV): BucketInternals {
  const bucket = kv as unknown as Partial<BucketInternals>;
  if (bucket.jsm === undefined || typeof bucket.stream !== 'string' || typeof bucket.fullKeyName !== 'function' || typeof bucket.prefixLen !== 'number') {
    throw new Error('not a KV bucket of nats.js (no stream manager or stream name)');
  }
  return bucket as BucketInternals;
}

/**
 * The entries of a bucket's keys that match `filter` and hold a value, read
 * without a consumer: the keys from the stream's subjects (stream info, which
 * the stream's leader answers), then each key's last value (kv.get, which the
 * leader answers too: see openKv).
 *
 * Not kv.keys(): that makes an ephemeral consumer, and nats-server 2.9 places
 * one on any of the stream's servers, a dead one too (it counts a server as
 * offline only minutes after it stopped answering, or when it shut down
 * cleanly). With one of three servers gone, most listings then waited out
 * their timeout, and a controller's reconcile pass or a health manager's
 * analysis failed with them, for minutes.
 */
export async function liveEntries(kv: KV, filter = '>'): Promise<KvEntry[]> {
  const entries = await Promise.all((await storedKeys(kv, filter)).map((key) => kv.get(key)));
  return entries.filter(isLive);
}

/**
 * Every key matching `filter` that the stream holds a message of, those
 * deleted or purged included (their marker is that message), sorted; from
 * the stream's subjects, without a consumer (see liveEntries).
 */
export async function storedKeys(kv: KV, filter = '>'): Promise<string[]> {
  const bucket = internals(kv);
  const info = await bucket.jsm.streams.info(bucket.stream, { subjects_filter: bucket.fullKeyName(filter) });
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(bucket.prefixLen)).sort();
}

/** The keys of liveEntries(), sorted. */
export async function liveKeys(kv: KV, filter = '>'): Promise<string[]> {
  return (await liveEntries(kv, filter)).map((entry) => entry.key).sort();
}
