// A stager on a real nats-server with JetStream, and the controller's side
// of a staging job: put a package into skiff_bits, send the request, fetch
// and unpack the droplet the stager stored.

import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { x as extractTar } from 'tar';
import { connectBus, type Bus } from '../bus/connection';
import type { StagerReply, StagerRequest } from '../bus/messages';
import { bitsObjectName, DEFAULT_STAGER_QUEUE, ObjectStores, stagingLogSubject } from '../bus/platform';
import { DEFAULT_BUILD_UIDS } from '../bus/uids';
import { Subjects } from '../bus/subjects';
import { prepareBuilds } from '../control/stager/build-user';
import { StagerService } from '../control/stager/service';
import { Stager, type StagerSettings } from '../control/stager/stager';
import { captureLog, startNats, type NatsServer, type TeardownHost } from './harness';

export interface StagerEnv {
  nats: NatsServer;
  bus: Bus;
  service: StagerService;
  logLines: string[];
  workDir: string;
  /** Stores the package and asks for staging; collects the staging log published meanwhile. */
  stage(app: string, pkg: Buffer, opts?: { sha?: string; command?: string | null; env?: Record<string, string> }): Promise<{ reply: StagerReply; published: string }>;
  /** Fetches a droplet from skiff_droplets, checks its sha1 and unpacks it into a fresh directory. */
  droplet(sha1: string): Promise<string>;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function scratchDir(t: TeardownHost, prefix = 'skiff-stager-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A directory for tools on the staging commands' PATH (fake python3s): searchable by build uids, as /usr/bin is. */
export function toolDir(t: TeardownHost): string {
  const dir = scratchDir(t, 'skiff-stager-bin-');
  chmodSync(dir, 0o755);
  return dir;
}

/** A --work-dir for a stager process: build uids must pass through it. */
export function workDirFor(t: TeardownHost): string {
  const dir = scratchDir(t);
  chmodSync(dir, 0o711);
  return dir;
}

export async function startStagerEnv(
  t: TeardownHost,
  opts: { settings?: Partial<StagerSettings>; maxJobs?: number; maxWaiting?: number; queue?: string } = {},
): Promise<StagerEnv> {
  const nats = await startNats(t);
  const { logger, lines } = captureLog('stager');
  const bus = await connectBus({ servers: nats.url, name: 'stager-test', logger });
  t.teardown(() => bus.close());
  const workDir = scratchDir(t);
  // Build uids pass through it to the jobs' directories, as through a stager's own.
  chmodSync(workDir, 0o711);
  // As root, builds run as uids of the default range, as a stager's do; otherwise as this user.
  const buildUids = await prepareBuilds(join(workDir, 'jobs'), DEFAULT_BUILD_UIDS, logger);
  const stager = new Stager(bus, {
    workDir: join(workDir, 'jobs'),
    buildUids,
    limits: { maxBytes: 64 * 1024 * 1024, maxEntries: 10_000 },
    commandTimeoutMs: 60_000,
    commandPath: process.env.PATH ?? '/usr/bin:/bin',
    maxPackageBytes: 64 * 1024 * 1024,
    ...opts.settings,
  }, logger);
  const queue = opts.queue ?? DEFAULT_STAGER_QUEUE;
  const service = new StagerService(bus, stager, { queue, maxJobs: opts.maxJobs ?? 2, maxWaiting: opts.maxWaiting ?? 10 }, logger);
  service.start();
  t.teardown(() => service.stop());
  await bus.flush();
  const js = bus.nats.jetstream();
  const bits = await js.views.os(ObjectStores.bits);
  const droplets = await js.views.os(ObjectStores.droplets);
  const decoder = new TextDecoder();

  return {
    nats,
    bus,
    service,
    logLines: lines,
    workDir,
    async stage(app, pkg, o = {}) {
      const sha = sha256(pkg);
      const name = bitsObjectName(app, sha);
      await bits.put({ name }, Readable.toWeb(Readable.from([pkg])) as unknown as ReadableStream<Uint8Array>);
      let published = '';
      const sub = bus.subscribe(stagingLogSubject(app), (msg) => {
        published += decoder.decode(msg.data);
      });
      await bus.flush();
      const request: StagerRequest = { app, bits: name, sha: o.sha ?? sha, manifest: { command: o.command ?? null, env: o.env ?? {} } };
      try {
        const reply = await bus.request<StagerReply>(Subjects.stager(queue), request, 120_000);
        await bus.flush();
        return { reply, published };
      } finally {
        sub.unsubscribe();
      }
    },
    async droplet(sha1) {
      const object = await droplets.get(sha1);
      if (!object) throw new Error(`droplet ${sha1} not in ${ObjectStores.droplets}`);
      const chunks: Buffer[] = [];
      for await (const chunk of object.data as unknown as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(chunk));
      const bytes = Buffer.concat(chunks);
      const actual = createHash('sha1').update(bytes).digest('hex');
      if (actual !== sha1) throw new Error(`droplet named ${sha1} has sha1 ${actual}`);
      const dir = scratchDir(t, 'skiff-droplet-');
      writeFileSync(join(dir, 'droplet.tgz'), bytes);
      await extractTar({ file: join(dir, 'droplet.tgz'), cwd: dir });
      rmSync(join(dir, 'droplet.tgz'));
      return dir;
    },
  };
}
