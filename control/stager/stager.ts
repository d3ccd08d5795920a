// One staging job, start to end: fetch the package from the bits store,
// check it, unpack it, detect the framework, install dependencies, pack the
// droplet and store it. Every step writes to the job's staging log; every
// job gets a fresh work directory that is removed when it ends.
//
// The build commands (npm install and the app's scripts, pip install) are
// the app's code. When the stager is root they run as the job's own build
// uid, which owns only the app directory, HOME and TMPDIR (0700) and passes
// through the stager's directories (0711) without listing them; when they
// are done every process of that uid is killed and the tree they left is
// checked (build-check.ts) before the stager packs it.

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ObjectStore } from 'nats';
import type { Bus } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import type { StagerReply, StagerRequest } from '../../bus/messages';
import { DROPLET_APP_DIR, ObjectStores, stagingLogSubject } from '../../bus/platform';
import { appRootOf, moveApp, unpackPackage, type UnpackLimits } from './archive';
import { checkBuiltApp } from './build-check';
import { giveTree, killEveryProcessOf, type BuildUids, type BuildUser } from './build-user';
import { installNodeDependencies, installPythonRequirements, needsPythonRequirements } from './dependencies';
import { detect, readPackageJson } from './detect';
import { addStaticServer, buildDroplet } from './droplet';
import { StagingError } from './errors';
import { StagingLog } from './staging-log';
import { openObjectStore } from '../../bus/jetstream';

export interface StagerSettings {
  /** Parent of the jobs' work directories. */
  workDir: string;
  limits: UnpackLimits;
  /** Limit for each command (npm install, pip install). */
  commandTimeoutMs: number;
  /** PATH of the staging commands: where npm, node and python3 are found. */
  commandPath: string;
  /** Largest package accepted from the bits store. */
  maxPackageBytes: number;
  /** The build uids (the stager is root, see prepareBuilds); null: build commands run as the stager's own user. */
  buildUids: BuildUids | null;
}

const encoder = new TextEncoder();

// Whatever step was cut short (a killed npm, say), the reason is the stop.
const CANCELLED = 'staging cancelled: the stager is stopping; push again';

// Names an app's environment cannot set for staging commands: they would
// point the commands at the stager's files or change what runs.
const RESERVED_ENV = new Set(['PATH', 'HOME', 'TMPDIR', 'NODE_OPTIONS', 'LD_PRELOAD', 'LD_LIBRARY_PATH', 'PYTHONPATH', 'PYTHONHOME']);

export class Stager {
  private stores: Promise<{ bits: ObjectStore; droplets: ObjectStore }> | undefined;

  private readonly settings: StagerSettings;
  private readonly pathsToldOf = new Set<string>();

  constructor(
    private readonly bus: Bus,
    settings: StagerSettings,
    private readonly logger: Logger,
  ) {
    this.settings = { ...settings };
  }

  get commandTimeoutMs(): number {
    return this.settings.commandTimeoutMs;
  }

  /** For jobs started from now on. */
  setCommandTimeout(ms: number): void {
    this.settings.commandTimeoutMs = ms;
  }

  private openStores(): Promise<{ bits: ObjectStore; droplets: ObjectStore }> {
    this.stores ??= (async () => {
      const js = this.bus.nats.jetstream();
      return { bits: await openObjectStore(js, ObjectStores.bits), droplets: await openObjectStore(js, ObjectStores.droplets) };
    })();
    // A failed open (JetStream down for a moment) is retried by the next job.
    this.stores.catch(() => (this.stores = undefined));
    return this.stores;
  }

  /** Stages one app; never throws: failures are replies with `error` and the log so far. */
  async stage(request: StagerRequest, signal?: AbortSignal): Promise<StagerReply> {
    const subject = stagingLogSubject(request.app);
    const log = new StagingLog({ publish: (text) => this.bus.publish(subject, encoder.encode(text)) });
    const started = Date.now();
    let jobDir: string | undefined;
    let user: BuildUser | undefined;
    try {
      await mkdir(this.settings.workDir, { recursive: true, mode: 0o711 });
      jobDir = await mkdtemp(join(this.settings.workDir, 'job-'));
      // The build uid passes through to its own directories; it cannot list this one.
      await chmod(jobDir, 0o711);
      user = await this.settings.buildUids?.acquire();
      const reply = await this.run(request, jobDir, log, signal, user);
      this.logger.info('staged', { app: request.app, droplet: reply.sha1, framework: reply.framework, ms: Date.now() - started });
      return reply;
    } catch (err) {
      const error = signal?.aborted
        ? CANCELLED
        : err instanceof StagingError
          ? err.message
          : `internal stager error: ${(err as Error).message ?? String(err)}`;
      if (!(err instanceof StagingError)) this.logger.error('staging failed unexpectedly', { app: request.app, error: err });
      else this.logger.info('staging failed', { app: request.app, error: err.message });
      log.step(`Staging failed: ${error}`);
      return { error, log: log.text() };
    } finally {
      if (user) {
        // Whatever way the job ended, nothing of its build runs on.
        await killEveryProcessOf(user).catch((err: unknown) => this.logger.error('build processes survive', { uid: user!.uid, error: err }));
        this.settings.buildUids?.release(user);
      }
      if (jobDir) await rm(jobDir, { recursive: true, force: true }).catch((err: unknown) => this.logger.warn('cannot remove work directory', { dir: jobDir, error: err }));
    }
  }

  private async run(request: StagerRequest, jobDir: string, log: StagingLog, signal: AbortSignal | undefined, user: BuildUser | undefined) {
    const checkCancelled = () => {
      if (signal?.aborted) throw new StagingError(CANCELLED);
    };
    const stores = await this.openStores();

    const packageFile = join(jobDir, 'package');
    const fetched = await this.fetchPackage(stores.bits, request, packageFile);
    log.step(`Downloaded app package (${formatSize(fetched)})`);
    checkCancelled();

    const unpacked = join(jobDir, 'unpacked');
    const result = await unpackPackage(packageFile, unpacked, this.settings.limits);
    await rm(packageFile);
    const root = await appRootOf(unpacked);
    const dropletDir = join(jobDir, 'droplet');
    const appDir = join(dropletDir, DROPLET_APP_DIR);
    await moveApp(root, appDir);
    await chmod(dropletDir, 0o711);
    const inFolder = root === unpacked ? '' : `, app in folder ${root.slice(unpacked.length + 1)}/`;
    log.step(`Unpacked ${result.format}: ${result.files} ${result.files === 1 ? 'entry' : 'entries'}, ${formatSize(result.bytes)}${inFolder}`);
    checkCancelled();

    const detection = await detect(appDir, request.manifest.command);
    log.step(`Detected ${detection.reason}: runtime ${detection.runtime}, framework ${detection.framework}`);
    log.step(`Start command: ${detection.startCommand}`);
    if (detection.note !== undefined) log.step(detection.note);
    if (detection.framework === 'static') await addStaticServer(appDir);

    const home = join(jobDir, 'home');
    const tmp = join(jobDir, 'tmp');
    await mkdir(home, { mode: 0o700 });
    await mkdir(tmp, { mode: 0o700 });
    if (user) {
      for (const dir of [appDir, home, tmp]) await giveTree(dir, user);
    }
    await chmod(appDir, 0o700);
    const env = this.commandEnv(request.manifest.env, home, tmp);
    if (user) env.PATH = await this.buildPath(user);
    const ctx = {
      appDir,
      env,
      timeoutMs: this.settings.commandTimeoutMs,
      log,
      signal,
      runAs: user,
    };
    // Both read before the first build command: then the tree is still the package's.
    const pkg = await readPackageJson(appDir);
    const python = await needsPythonRequirements(appDir);
    await installNodeDependencies(ctx, pkg);
    checkCancelled();
    if (python) await installPythonRequirements(ctx);
    checkCancelled();

    // Nothing of the build may change the tree while it is checked and packed.
    if (user) await killEveryProcessOf(user);
    await checkBuiltApp(appDir, user?.uid ?? process.getuid!());
    // As every droplet had it before builds ran as their own uid; the DEA owns what it unpacks.
    await chmod(appDir, 0o755);

    const info = { runtime: detection.runtime, framework: detection.framework, start_command: detection.startCommand };
    const droplet = await buildDroplet(dropletDir, info, join(jobDir, 'droplet.tgz'));
    log.step(`Droplet ${droplet.sha1} (${formatSize(droplet.size)})`);
    if (await storeDroplet(stores.droplets, droplet.file, droplet.sha1)) log.step('Droplet uploaded');
    else log.step('Droplet already stored');
    return { droplet: droplet.sha1, sha1: droplet.sha1, ...info, log: log.text() };
  }

  /** The commands' PATH as a build uid: without the directories it cannot search, said once. */
  private async buildPath(user: BuildUser): Promise<string> {
    const { path, left } = await this.settings.buildUids!.reachablePath(this.settings.commandPath, user);
    if (left.length > 0 && !this.pathsToldOf.has(this.settings.commandPath)) {
      this.pathsToldOf.add(this.settings.commandPath);
      this.logger.warn('PATH directories that build uids cannot search (or that are missing) are left out of build commands\' PATH', { left: left.join(':'), path });
    }
    return path;
  }

  /** The staging commands' whole environment: the app's own variables, then the stager's minimal few. */
  private commandEnv(appEnv: Record<string, string>, home: string, tmp: string): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(appEnv)) {
      if (!RESERVED_ENV.has(key.toUpperCase()) && /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) env[key] = value;
    }
    return { ...env, PATH: this.settings.commandPath, HOME: home, TMPDIR: tmp, LANG: 'C.UTF-8' };
  }

  private async fetchPackage(bits: ObjectStore, request: StagerRequest, file: string): Promise<number> {
    const object = await bits.get(request.bits);
    if (!object) throw new StagingError(`app package ${request.bits} not found in ${ObjectStores.bits}`);
    if (object.info.size > this.settings.maxPackageBytes) {
      await object.data.cancel().catch(() => {});
      throw new StagingError(`app package is larger than ${formatSize(this.settings.maxPackageBytes)}`);
    }
    const hash = createHash('sha256');
    let size = 0;
    await pipeline(
      object.data as unknown as AsyncIterable<Uint8Array>,
      async function* (chunks: AsyncIterable<Uint8Array>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          size += chunk.length;
          yield chunk;
        }
      },
      createWriteStream(file, { mode: 0o600 }),
    );
    const storeError = await object.error;
    if (storeError) throw new Error(`reading ${request.bits} from ${ObjectStores.bits}: ${storeError.message}`);
    const sha256 = hash.digest('hex');
    if (sha256 !== request.sha.toLowerCase()) {
      throw new StagingError(`app package checksum mismatch: expected sha256 ${request.sha}, got ${sha256}`);
    }
    return size;
  }

}

/** Stores a droplet under its sha1; false when one of that name is already there. */
export async function storeDroplet(droplets: ObjectStore, file: string, sha1: string): Promise<boolean> {
  const existing = await droplets.info(sha1);
  if (existing && !existing.deleted) return false;
  await droplets.put({ name: sha1 }, Readable.toWeb(createReadStream(file)) as unknown as ReadableStream<Uint8Array>);
  return true;
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
