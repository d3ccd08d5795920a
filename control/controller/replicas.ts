// Replication of the platform's state: once three nats-servers serve the
// cluster (CLUSTER_BUCKET's `nats.<node>` entries, written by the node
// supervisors), every KV bucket and object store is raised to three
// replicas, so that losing one NATS node loses nothing (design.md, Cluster
// and operations). Buckets created later (at one replica, by whichever role
// opens them first) are raised on the next pass. Only ever raised: a cluster
// that shrinks keeps its replicas, and nats-server moves them off a server
// that is gone once an operator removes it.

import type { KV } from 'nats';
import type { Bus } from '../../bus/connection';
import { liveKeys, openKv } from '../../bus/jetstream';
import type { Logger } from '../../bus/log';
import { CLUSTER_BUCKET } from '../../bus/platform';

export const TARGET_REPLICAS = 3;

export class Replication {
  private timer: NodeJS.Timeout | undefined;
  private kv: KV | undefined;
  private running = false;

  constructor(
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.pass(), this.intervalMs);
    this.timer.unref();
    void this.pass();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** How many nats-servers serve the cluster, as their supervisors say. */
  async servers(): Promise<number> {
    this.kv ??= await openKv(this.bus.nats.jetstream({ timeout: 5000 }), CLUSTER_BUCKET, { history: 1 });
    return (await liveKeys(this.kv, 'nats.>')).length;
  }

  /** One pass: raises every stream below the target; what it raised, by name. */
  async pass(): Promise<string[]> {
    if (this.running) return [];
    this.running = true;
    const raised: string[] = [];
    try {
      if ((await this.servers()) < TARGET_REPLICAS) return raised;
      const jsm = await this.bus.nats.jetstreamManager({ timeout: 10_000 });
      for await (const info of jsm.streams.list()) {
        if ((info.config.num_replicas ?? 1) >= TARGET_REPLICAS) continue;
        await jsm.streams.update(info.config.name, { ...info.config, num_replicas: TARGET_REPLICAS });
        raised.push(info.config.name);
        this.log.info('stream raised to three replicas', { stream: info.config.name });
      }
    } catch (error) {
      this.log.warn('replication pass failed; the next pass retries', { error: (error as Error).message });
    } finally {
      this.running = false;
    }
    return raised;
  }
}
