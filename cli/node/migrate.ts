// Moving a first node's JetStream data into the cluster it becomes part of.
//
// nats-server (2.9, 2.10) cannot turn a standalone JetStream server into a
// member of a cluster with its streams: they become orphans the cluster
// does not know, and may be deleted (nats-server issues 3267 and 5467; the
// advice there is to back the assets up and restore them into the
// cluster). So the first node does exactly that, once: it copies every
// stream (KV buckets and object stores alike: a stream's messages, headers
// and all, replayed in order give the same keys, deletes and objects) to a
// file, restarts its nats-server as part of the cluster with an empty
// store, and replays the file into the cluster.

import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { headers as natsHeaders, type JetStreamManager, type NatsConnection, type StreamConfig } from 'nats';
import type { Logger } from '../../bus/log';

interface Dumped {
  stream: string;
  config: Partial<StreamConfig>;
  messages: number;
}

/** Copies every stream of the server `nc` is connected to into `dir` (one JSON line per message). */
export async function dumpStreams(nc: NatsConnection, dir: string, log: Logger): Promise<Dumped[]> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const jsm = await nc.jetstreamManager({ timeout: 10_000 });
  const js = nc.jetstream({ timeout: 10_000 });
  const dumped: Dumped[] = [];
  for await (const info of jsm.streams.list()) {
    const name = info.config.name;
    const file = createWriteStream(join(dir, `${name}.jsonl`), { mode: 0o600 });
    let count = 0;
    if (info.state.messages > 0) {
      const consumer = await js.consumers.get(name);
      const messages = await consumer.consume();
      for await (const m of messages) {
        const headers: Array<[string, string[]]> = [];
        // Preconditions of the original publish (kv.create's "no earlier revision", dedup ids) would refuse the replay.
        if (m.headers) for (const [key, values] of m.headers) if (!/^nats-(expected-|msg-id)/i.test(key)) headers.push([key, values]);
        const line = JSON.stringify({ subject: m.subject, headers, data: Buffer.from(m.data).toString('base64') }) + '\n';
        if (!file.write(line)) await once(file, 'drain');
        count++;
        if (m.seq >= info.state.last_seq || count >= info.state.messages) break;
      }
      messages.stop();
    }
    file.end();
    await once(file, 'close');
    const { cluster: _cluster, placement: _placement, ...config } = info.config as StreamConfig & { cluster?: unknown };
    dumped.push({ stream: name, config: { ...config, num_replicas: 1 }, messages: count });
    log.info('copied a stream out of the standalone server', { stream: name, messages: count });
  }
  return dumped;
}

/** Creates each stream in the cluster (or takes the one a role made meanwhile) and replays its messages into it. */
export async function restoreStreams(nc: NatsConnection, dir: string, dumped: Dumped[], log: Logger): Promise<void> {
  const jsm = await nc.jetstreamManager({ timeout: 20_000 });
  const js = nc.jetstream({ timeout: 20_000 });
  for (const { stream, config, messages } of dumped) {
    await ensureStream(jsm, stream, config);
    if (messages === 0) continue;
    const lines = createInterface({ input: createReadStream(join(dir, `${stream}.jsonl`)), crlfDelay: Infinity });
    let replayed = 0;
    for await (const line of lines) {
      if (line === '') continue;
      const m = JSON.parse(line) as { subject: string; headers: Array<[string, string[]]>; data: string };
      const h = natsHeaders();
      for (const [key, values] of m.headers) for (const value of values) h.append(key, value);
      await js.publish(m.subject, Buffer.from(m.data, 'base64'), { headers: m.headers.length > 0 ? h : undefined });
      replayed++;
    }
    log.info('copied a stream into the cluster', { stream, messages: replayed });
  }
}

async function ensureStream(jsm: JetStreamManager, name: string, config: Partial<StreamConfig>): Promise<void> {
  try {
    await jsm.streams.add({ ...config, name } as StreamConfig);
  } catch (error) {
    // A role reconnected first and opened its bucket already: the messages go into that one.
    if (!/already in use|stream name already/i.test((error as Error).message)) throw error;
  }
}

export function removeDump(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
