// The DEA on the bus: advertises itself, takes start requests, answers
// discover/locate/find/status/stop/update and files requests, heartbeats,
// keeps the routers' tables fresh, and samples its instances' process trees.

import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, chown, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { ComponentConfig } from '../bus/config';
import type { Bus, BusMessage, Subscription } from '../bus/connection';
import type { Logger } from '../bus/log';
import type {
  DeaAdvertise, DeaDiscoverReply, DeaFindDropletReply, DeaHeartbeat, DeaStats, DropletExited, ExitReason, InstanceState, Limits, RouterRegister, RouterStart,
} from '../bus/messages';
import { deaFilesSubject, deaSshSubject, RUNTIMES, type FilesReply, type FilesRequest, type SshReply } from '../bus/platform';
import { checkSetting } from '../bus/settings';
import { Subjects } from '../bus/subjects';
import {
  decode, RejectionCounter, validateDeaDiscover, validateDeaFindDroplet, validateDeaStartRequest, validateDeaStop,
  validateDeaUpdate, validateRouterStart, validateSshRequest, type Validator,
} from '../bus/validate';
import { formatRange, inRange, type IdRange } from '../bus/uids';
import { SKIFF_VERSION } from '../bus/version';
import { DropletCache } from './droplets';
import { formatCfTime } from './env';
import { groupArgs, readInstancePathAs, type RunAs } from './files-as-user';
import { inotifyWarning, readInotifyLimits } from './host-checks';
import { matchesFilters, stopTargets } from './filters';
import { DeaMetrics } from './metrics';
import { Instance, newInstanceId, type InstanceContext, type InstanceEvents, type InstanceSpec } from './instance';
import { bindProbe, PortAllocator } from './ports';
import { instanceProcesses, readProcessTable, readStat, sysconf } from './proc';
import { RecordStore, type InstanceRecord } from './records';
import { SshSessions } from './ssh';
import { GroupWatchdog } from './watchdog';

export interface DeaSettings {
  /** The platform's data dir: apps may pass through it to their directories, never list it. */
  dataDir: string;
  /** <data-dir>/dea/<index> */
  baseDir: string;
  index: number;
  host: string;
  portRange: { first: number; last: number };
  startTimeoutMs: number;
  stopGraceMs: number;
  /** Undefined: dea.max_memory_mb from the config store, else DEFAULT_MEMORY_MB. */
  memoryMb: number | undefined;
  defaultMemoryMb: number;
  /** As root: the user of instances whose start carries no uid (older controllers); ignored otherwise. */
  user: string;
  /** As root: the uids a start may ask for (each app its own); a start with another is refused. */
  appUids: IdRange;
  /** The supplementary groups a start's bound services may give an instance; a start with another is refused. */
  serviceGids: IdRange;
  crashKeepMs: number;
  advertiseIntervalMs?: number;
  heartbeatIntervalMs?: number;
  sampleIntervalMs?: number;
  /** dea.stats period; 5 s (the bus contract) unless a test sets it. */
  statsIntervalMs?: number;
  /** The node this DEA runs on (`--node`), named in dea.stats. */
  node?: string;
}

export class DeaSetupError extends Error {
  override name = 'DeaSetupError';
}

const FILES_FIELDS = ['droplet', 'instance', 'path'] as const;

export class Dea {
  readonly id = randomUUID();
  private readonly instances = new Map<string, Instance>();
  readonly metrics = new DeaMetrics({
    usageStats: () => this.usageStats(),
    appName: (id) => {
      for (const instance of this.instances.values()) if (instance.spec.appId === id) return instance.spec.name;
      return undefined;
    },
  });
  private readonly subscriptions: Subscription[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private registerTimer: NodeJS.Timeout | undefined;
  private registerIntervalMs = 20_000;
  private readonly rejections: RejectionCounter;
  private readonly watchdog = new GroupWatchdog();
  private readonly records: RecordStore;
  private readonly ports: PortAllocator;
  private readonly droplets: DropletCache;
  private ctx!: InstanceContext;
  private isRoot = false;
  /** As root: who runs an instance whose start names no uid (--user). */
  private fallbackUser: RunAs | undefined;
  private hasSetpriv = false;
  private hasPrlimit = false;
  private sessions: SshSessions | undefined;
  private sampling = false;
  private stopping = false;
  private readonly instancesDir: string;

  constructor(
    private readonly settings: DeaSettings,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly config?: ComponentConfig,
  ) {
    this.rejections = new RejectionCounter(logger);
    this.records = new RecordStore(join(settings.baseDir, 'run'));
    this.ports = new PortAllocator(settings.portRange, bindProbe(settings.host));
    this.droplets = new DropletCache(bus, join(settings.baseDir, 'droplets'));
    this.instancesDir = join(settings.baseDir, 'instances');
  }

  get maxMemoryMb(): number {
    if (this.settings.memoryMb !== undefined) return this.settings.memoryMb;
    const fromStore = this.config?.get('max_memory_mb');
    if (fromStore === undefined) return this.settings.defaultMemoryMb;
    const checked = checkSetting('dea.max_memory_mb', fromStore);
    return checked.ok ? (checked.value as number) : this.settings.defaultMemoryMb;
  }

  get reservedMemoryMb(): number {
    let total = 0;
    for (const instance of this.instances.values()) if (instance.reservesMemory) total += instance.spec.limits.mem;
    return total;
  }

  get availableMemoryMb(): number {
    return Math.max(0, this.maxMemoryMb - this.reservedMemoryMb);
  }

  get componentTag(): string {
    return `dea-${this.settings.index}`;
  }

  /** Instances by id, for tests and status. */
  list(): Instance[] {
    return [...this.instances.values()];
  }

  async start(): Promise<void> {
    const inotify = inotifyWarning(readInotifyLimits());
    if (inotify !== undefined) this.logger.warn(inotify);
    await this.prepareDirectories();
    this.detectLauncher();
    const { pageSize, ticksPerSecond } = sysconf();
    this.ctx = {
      host: this.settings.host,
      startTimeoutMs: this.settings.startTimeoutMs,
      stopGraceMs: this.settings.stopGraceMs,
      runAs: (spec) => this.runAsFor(spec),
      launcher: (limits, runAs) => this.launcher(limits, runAs),
      droplets: this.droplets,
      ports: this.ports,
      watchdog: this.watchdog,
      pageSize,
      ticksPerSecond,
      logger: this.logger,
    };
    this.watchdog.start();
    this.sessions = new SshSessions({
      bus: this.bus,
      logger: this.logger,
      rejections: this.rejections,
      watchdog: this.watchdog,
      canAllocateTerminal: spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0,
    });
    await this.cleanUpPreviousRun();

    this.listen(Subjects.deaInstanceStart(this.id), (msg) => this.onStart(msg));
    this.listen(Subjects.deaDiscover, (msg) => this.onDiscover(msg));
    this.listen(Subjects.deaLocate, () => this.advertise(true));
    this.listen(Subjects.deaStop, (msg) => this.onStop(msg));
    this.listen(Subjects.deaFindDroplet, (msg) => this.onFind(msg));
    this.listen(Subjects.deaUpdate, (msg) => this.onUpdate(msg));
    this.listen(Subjects.deaStatus, (msg) => void msg.respond(this.status()));
    this.listen(Subjects.routerStart, (msg) => this.onRouterStart(msg));
    this.listen(Subjects.healthmanagerStart, () => this.heartbeat());
    this.listen(deaFilesSubject(this.id), (msg) => this.onFiles(msg));
    this.listen(deaSshSubject(this.id), (msg) => this.onSsh(msg));

    // Routers already up answer with their register interval (and get our routes at once).
    this.bus.request(Subjects.routerGreet, {}, 2000).then(
      (reply) => {
        const start = validateRouterStart(reply);
        if (start.ok && !this.stopping) this.applyRouterStart(start.value);
      },
      () => {},
    );
    this.bus.publish(Subjects.deaStart, { id: this.id, ip: this.settings.host, version: SKIFF_VERSION });
    this.advertise(false);
    this.heartbeat();
    this.every(this.settings.advertiseIntervalMs ?? 5000, () => this.advertise(false));
    this.every(this.settings.heartbeatIntervalMs ?? 10_000, () => this.heartbeat());
    this.every(this.settings.sampleIntervalMs ?? 2000, () => void this.sample());
    this.every(this.settings.statsIntervalMs ?? 5000, () => this.publish(Subjects.deaStats, this.usageStats()));
    // Checked often enough for the keep time to hold within about half of it (a minute at most).
    this.every(Math.max(500, Math.min(60_000, this.settings.crashKeepMs / 2)), () => void this.expireCrashed());
    this.scheduleRegister();
    this.bus.onEvent((event) => {
      if (event === 'reconnect' && !this.stopping) {
        this.advertise(true);
        this.heartbeat();
        this.registerAll();
      }
    });
    this.logger.info('DEA ready', {
      id: this.id, index: this.settings.index, dir: this.settings.baseDir, memory_mb: this.maxMemoryMb,
      ports: `${this.settings.portRange.first}-${this.settings.portRange.last}`,
      app_uids: this.isRoot ? formatRange(this.settings.appUids) : undefined, service_gids: formatRange(this.settings.serviceGids), user_without_uid: this.isRoot ? this.settings.user : undefined,
      watchdog_pid: this.watchdog.pid,
    });
  }

  /** Stops every instance (reason DEA_SHUTDOWN by default) and leaves the bus. */
  async stop(reason: ExitReason = 'DEA_SHUTDOWN'): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.registerTimer);
    for (const sub of this.subscriptions) if (sub.subject === deaSshSubject(this.id)) sub.unsubscribe();
    await Promise.all([
      this.sessions?.closeAll('the DEA is shutting down'),
      ...this.list().filter((i) => i.reservesMemory).map((i) => this.stopInstance(i, reason)),
    ]);
    for (const sub of this.subscriptions) sub.unsubscribe();
    await this.bus.flush().catch(() => {});
    this.watchdog.close();
  }

  // ---- setup ----

  private async prepareDirectories(): Promise<void> {
    this.isRoot = process.getuid?.() === 0;
    await mkdir(this.instancesDir, { recursive: true, mode: 0o711 });
    // Apps pass through these to their own directory (0700, theirs) and may list none of them.
    await this.restrictDataDir();
    for (const dir of this.dirsBelowDataDir()) await chmod(dir, 0o711);
    // The DEA's own: the droplets of every app, and records naming pids it will kill.
    const droplets = join(this.settings.baseDir, 'droplets');
    await mkdir(droplets, { recursive: true, mode: 0o700 });
    await chmod(droplets, 0o700);
    await this.records.init();
    if (!this.isRoot) {
      this.logger.warn(
        `not running as root: every app runs as this DEA's own user (uid ${process.getuid?.()}), so apps can read each other's files ` +
          `and the platform's (data dir, credentials) and signal each other and the DEA; run the DEA as root to give each app its own uid`,
      );
      return;
    }
    this.fallbackUser = lookupUser(this.settings.user);
    // Every app user must reach its instance directory through every parent.
    await this.probeReach(`user ${this.settings.user}`, this.fallbackUser);
    const first = this.settings.appUids.first;
    await this.probeReach(`uid ${first} (--app-uids)`, { uid: first, gid: first });
  }

  /** <data-dir>/dea, <data-dir>/dea/<index>, instances/: root's, traverse-only for everyone else. */
  private dirsBelowDataDir(): string[] {
    const below = relative(this.settings.dataDir, this.instancesDir);
    if (below === '' || below.startsWith('..') || below.startsWith(sep)) return [this.settings.baseDir, this.instancesDir];
    const parts = below.split(sep);
    return parts.map((_, i) => join(this.settings.dataDir, ...parts.slice(0, i + 1)));
  }

  /**
   * The data dir becomes 0711 (apps reach their directory through it, list
   * nothing in it) when it is the DEA's own; one shared with others (sticky
   * or world-writable, like /tmp) is left alone, with a warning when apps
   * could list it.
   */
  private async restrictDataDir(): Promise<void> {
    const { dataDir } = this.settings;
    const info = await stat(dataDir);
    const mode = info.mode & 0o7777;
    if (mode === 0o711) return;
    if (info.uid === process.getuid?.() && (mode & 0o1002) === 0) {
      await chmod(dataDir, 0o711);
      return;
    }
    if ((mode & 0o044) !== 0) {
      this.logger.warn(`apps can list the data dir ${dataDir} (mode ${mode.toString(8)}): make it a directory of its own, mode 0711`);
    }
  }

  private async probeReach(who: string, user: RunAs): Promise<void> {
    const probe = join(this.instancesDir, `.probe-${process.pid}`);
    await mkdir(probe, { recursive: true, mode: 0o700 });
    try {
      await chown(probe, user.uid, user.gid);
      const check = spawnSync('setpriv', [
        `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', '/bin/sh', '-c', 'cd "$1" && test -w .', 'sh', probe,
      ], { stdio: 'ignore', env: { PATH: '/usr/bin:/bin' } });
      if (check.error) throw new DeaSetupError(`setpriv is needed to run apps as their own users (apt-get install util-linux): ${check.error.message}`);
      if (check.status !== 0) {
        throw new DeaSetupError(
          `${who} cannot reach ${this.instancesDir}: every parent directory must be searchable by it ` +
            `(e.g. chmod o+x on the data dir and its parents, or choose --data-dir elsewhere)`,
        );
      }
    } finally {
      await rm(probe, { recursive: true, force: true });
    }
  }

  private detectLauncher(): void {
    const works = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
    this.hasSetpriv = works('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'true']);
    if (!this.hasSetpriv) {
      if (this.isRoot) throw new DeaSetupError('setpriv (util-linux) is needed to run apps as unprivileged users');
      this.logger.warn('setpriv not found: app instances may outlive a killed DEA (install util-linux)');
    }
    this.hasPrlimit = works('prlimit', ['--nofile=64:64', '--', 'true']);
  }

  /** As root: the app's own uid (gid the same number), or --user for a start without one; its services' gids as supplementary groups. */
  private runAsFor(spec: InstanceSpec): RunAs | undefined {
    if (!this.isRoot) return undefined;
    const user = spec.uid !== undefined && Number.isInteger(spec.uid) && spec.uid > 0 ? { uid: spec.uid, gid: spec.uid } : this.fallbackUser;
    if (user === undefined) return undefined;
    // Checked at the start; a record from another range (an older run's) gives no group rather than a wrong one.
    const groups = serviceGids(spec.services).filter((gid) => inRange(this.settings.serviceGids, gid));
    return groups.length > 0 ? { ...user, groups } : user;
  }

  private launcher(limits: Limits, runAs: RunAs | undefined): string[] {
    const prefix: string[] = [];
    if (this.hasSetpriv) {
      prefix.push('setpriv', '--pdeathsig', 'SIGKILL');
      if (runAs) prefix.push(`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, ...groupArgs(runAs));
      prefix.push('--');
    }
    if (limits.fds > 0) {
      if (this.hasPrlimit) prefix.push('prlimit', `--nofile=${limits.fds}:${limits.fds}`, '--');
      else prefix.push('/bin/sh', '-c', `ulimit -n ${limits.fds} && exec "$@"`, 'fds');
    }
    return prefix;
  }

  /**
   * A previous run of this DEA may have been killed: its running instances are
   * orphans (the watchdog normally kills them) holding ports and memory the
   * controller no longer counts. Kill them and remove their directories;
   * keep crashed instances that are still within their keep time.
   */
  private async cleanUpPreviousRun(): Promise<void> {
    const { records, broken } = await this.records.loadAll();
    if (broken.length > 0) this.logger.warn('unreadable instance records removed', { count: broken.length });
    const table = await readProcessTable().catch(() => []);
    const known = new Set<string>();
    let killed = 0;
    for (const record of records) {
      const keepCrashed = record.state === 'CRASHED' && (record.crashTimestamp ?? record.stateTimestamp) * 1000 + this.settings.crashKeepMs > Date.now();
      if (keepCrashed) {
        const instance = Instance.restoreCrashed(record.spec, this.instanceDir(record.spec.instanceId), this.ctx, this.events, record);
        this.instances.set(instance.id, instance);
        known.add(instance.id);
        continue;
      }
      if (record.pid !== undefined && record.pidStartTime !== undefined) {
        const stat = await readStat(record.pid);
        if (stat && stat.starttime === record.pidStartTime) {
          for (const p of instanceProcesses(table, record.pid)) signal(p.pid, 'SIGKILL');
          signal(-record.pid, 'SIGKILL');
          killed++;
        }
      }
      await rm(this.instanceDir(record.spec.instanceId), { recursive: true, force: true });
      await this.records.remove(record.spec.instanceId);
    }
    let removed = 0;
    for (const name of await readdir(this.instancesDir).catch(() => [] as string[])) {
      if (known.has(name)) continue;
      await rm(join(this.instancesDir, name), { recursive: true, force: true });
      removed++;
    }
    if (killed > 0 || removed > 0) this.logger.info('cleaned up after the previous run', { processes_killed: killed, directories_removed: removed });
  }

  // ---- bus ----

  private listen(subject: string, handler: (msg: BusMessage) => void | Promise<void>): void {
    this.subscriptions.push(this.bus.subscribe(subject, handler));
  }

  private parse<T>(msg: BusMessage, validate: Validator<T>): T | undefined {
    const result = decode(msg.data, validate);
    if (result.ok) return result.value;
    this.rejections.reject(msg.subject, result.error);
    return undefined;
  }

  get rejected(): number {
    return this.rejections.total;
  }

  private readonly events: InstanceEvents = {
    running: (instance) => {
      this.logger.info('instance running', { app: instance.spec.appId, name: instance.spec.name, index: instance.spec.index, instance: instance.id, port: instance.port });
      this.register(instance);
      this.heartbeat();
    },
    exited: (instance, reason) => void this.onExited(instance, reason),
    changed: (instance) => {
      // A stopping instance takes its ssh sessions along; a crashed one keeps its directory, and them.
      if (instance.state === 'STOPPING' || instance.state === 'STOPPED' || instance.state === 'DELETED') {
        this.sessions?.endFor(instance.id, 'the instance stopped');
      }
      void this.persist(instance);
    },
  };

  private async onExited(instance: Instance, reason: ExitReason): Promise<void> {
    this.unregister(instance);
    const exited: DropletExited = {
      droplet: instance.spec.appId,
      version: instance.spec.version,
      instance: instance.id,
      index: instance.spec.index,
      reason,
    };
    if (reason === 'CRASHED') {
      if (instance.exitStatus !== undefined) exited.exit_status = instance.exitStatus;
      exited.exit_description = instance.exitDescription;
      exited.crash_timestamp = instance.crashTimestamp;
    }
    this.publish(Subjects.dropletExited, exited);
    if (reason === 'CRASHED') this.metrics.crashes.inc();
    else this.metrics.stops.inc({ reason });
    this.logger.info('instance exited', {
      app: instance.spec.appId, index: instance.spec.index, instance: instance.id, reason,
      exit_status: exited.exit_status, description: exited.exit_description,
    });
    if (reason !== 'CRASHED') {
      this.instances.delete(instance.id);
      await instance.removeDirectory().catch(() => {});
      await this.records.remove(instance.id).catch(() => {});
    }
    this.heartbeat();
  }

  private async persist(instance: Instance): Promise<void> {
    if (instance.state === 'STOPPED' || instance.state === 'DELETED') {
      if (instance.state === 'DELETED') {
        this.instances.delete(instance.id);
        await instance.removeDirectory().catch(() => {});
      }
      await this.records.remove(instance.id).catch(() => {});
      return;
    }
    const record: InstanceRecord = {
      spec: instance.spec,
      state: instance.state,
      stateTimestamp: instance.stateTimestamp,
      pid: instance.pid,
      pidStartTime: instance.pidStartTime,
      port: instance.port,
      exitStatus: instance.exitStatus,
      exitDescription: instance.exitDescription,
      crashTimestamp: instance.crashTimestamp,
    };
    await this.records.save(record).catch((err: unknown) => this.logger.warn('cannot save instance record', { instance: instance.id, error: err }));
  }

  private publish(subject: string, body: object): void {
    try {
      this.bus.publish(subject, body);
    } catch (err) {
      this.logger.warn('publish failed', { subject, error: err });
    }
  }

  private onStart(msg: BusMessage): void {
    const checked = decode(msg.data, validateDeaStartRequest);
    if (!checked.ok) {
      this.rejections.reject(msg.subject, checked.error);
      msg.respond({ error: `invalid start request: ${checked.error}` });
      return;
    }
    const start = checked.value;
    if (start.uid !== undefined && this.isRoot && !inRange(this.settings.appUids, start.uid)) {
      const range = formatRange(this.settings.appUids);
      this.logger.warn('start refused: uid outside --app-uids', { app: start.droplet, index: start.index, uid: start.uid, app_uids: range });
      msg.respond({ error: `uid ${start.uid} is outside this DEA's --app-uids ${range}: give controllers and DEAs the same range` });
      return;
    }
    const gids = checkServiceGids(start.services, this.settings.serviceGids);
    if (typeof gids === 'string') {
      // Names and numbers only: a bound service's credentials are never logged.
      this.logger.warn('start refused: a bound service\'s gid', { app: start.droplet, index: start.index, reason: gids });
      msg.respond({ error: gids });
      return;
    }
    if (this.stopping) {
      msg.respond({ error: 'DEA is shutting down' });
      return;
    }
    if (start.limits.mem > this.availableMemoryMb) {
      this.logger.warn('start refused: not enough memory', { app: start.droplet, wanted_mb: start.limits.mem, available_mb: this.availableMemoryMb });
      msg.respond({ error: `not enough memory: ${start.limits.mem} MB wanted, ${this.availableMemoryMb} MB available` });
      return;
    }
    const spec: InstanceSpec = {
      appId: start.droplet,
      name: start.name,
      instanceId: newInstanceId(),
      index: start.index,
      version: start.version,
      sha1: start.sha1,
      dropletObject: start.droplet_object ?? start.sha1,
      runtime: start.runtime,
      uris: start.uris,
      limits: start.limits,
      env: start.env,
      services: start.services,
      startCommand: start.start_command,
      ...(start.uid !== undefined ? { uid: start.uid } : {}),
      ...(start.session_affinity === true ? { sessionAffinity: true } : {}),
    };
    const instance = new Instance(spec, this.instanceDir(spec.instanceId), this.ctx, this.events);
    this.instances.set(instance.id, instance);
    this.metrics.starts.inc();
    msg.respond({ dea: this.id, instance: instance.id, index: spec.index, state: instance.state });
    this.logger.info('starting instance', { app: spec.appId, name: spec.name, index: spec.index, instance: instance.id, sha1: spec.sha1, uid: instance.runAs?.uid });
    void this.persist(instance);
    void instance.start();
    this.heartbeat();
  }

  private onDiscover(msg: BusMessage): void {
    const discover = this.parse(msg, validateDeaDiscover);
    if (!discover || this.stopping) return;
    if (!(RUNTIMES as readonly string[]).includes(discover.runtime)) return;
    if (discover.limits.mem > this.availableMemoryMb) return;
    // The least loaded DEA answers first; the controller takes the first answer.
    const load = this.maxMemoryMb > 0 ? this.reservedMemoryMb / this.maxMemoryMb : 1;
    const sameApp = this.list().filter((i) => i.reservesMemory && i.spec.appId === discover.droplet).length;
    const delayMs = Math.min(1000, Math.round(load * 100) + sameApp * 10);
    const reply: DeaDiscoverReply = { id: this.id, ip: this.settings.host, port: 0 };
    setTimeout(() => {
      if (!this.stopping) msg.respond(reply);
    }, delayMs).unref();
  }

  private onStop(msg: BusMessage): void {
    const filters = this.parse(msg, validateDeaStop);
    if (!filters) return;
    const views = this.list().map((instance) => ({ ...instanceFilterView(instance), instance }));
    for (const { instance } of stopTargets(views, filters)) void this.stopInstance(instance, 'STOPPED');
  }

  private async stopInstance(instance: Instance, reason: ExitReason): Promise<void> {
    // Routers first, so no request reaches a process that is going away.
    if (instance.state === 'RUNNING') this.unregister(instance);
    this.logger.info('stopping instance', { app: instance.spec.appId, index: instance.spec.index, instance: instance.id, reason });
    await instance.stop(reason);
  }

  private async onFind(msg: BusMessage): Promise<void> {
    const find = this.parse(msg, validateDeaFindDroplet);
    if (!find || !msg.reply) return;
    for (const instance of this.list()) {
      if (instance.state === 'DELETED' || instance.state === 'STOPPED') continue;
      if (!matchesFilters(instanceFilterView(instance), find)) continue;
      const reply: DeaFindDropletReply = {
        dea: this.id,
        droplet: instance.spec.appId,
        version: instance.spec.version,
        instance: instance.id,
        index: instance.spec.index,
        state: instance.state,
        state_timestamp: instance.stateTimestamp,
      };
      if (find.include_stats) {
        const usage = instance.currentUsage();
        const disk = await instance.diskUsage();
        reply.stats = {
          name: instance.spec.name,
          host: this.settings.host,
          port: instance.port ?? 0,
          uris: instance.spec.uris,
          uptime: instance.uptimeSeconds,
          mem_quota: instance.spec.limits.mem * 1024 * 1024,
          disk_quota: instance.spec.limits.disk * 1024 * 1024,
          fds_quota: instance.spec.limits.fds,
          usage: { cpu: usage.cpu, mem: Math.round(usage.rssBytes / 1024), disk, time: formatCfTime(new Date()) },
        };
      }
      msg.respond(reply);
    }
  }

  private onUpdate(msg: BusMessage): void {
    const update = this.parse(msg, validateDeaUpdate);
    if (!update) return;
    for (const instance of this.list()) {
      if (instance.spec.appId !== update.droplet || !instance.reservesMemory) continue;
      const running = instance.state === 'RUNNING';
      const urisChanged = JSON.stringify(instance.spec.uris) !== JSON.stringify(update.uris);
      const affinity = update.session_affinity ?? instance.spec.sessionAffinity === true;
      const affinityChanged = affinity !== (instance.spec.sessionAffinity === true);
      if (!urisChanged && !affinityChanged) continue;
      // An option alone needs no unregister: the register message replaces it, and the route never loses the instance.
      if (running && urisChanged) this.unregister(instance);
      instance.spec.uris = [...update.uris];
      if (affinity) instance.spec.sessionAffinity = true;
      else delete instance.spec.sessionAffinity;
      if (running) this.register(instance);
      void this.persist(instance);
    }
  }

  private onRouterStart(msg: BusMessage): void {
    const start = this.parse(msg, validateRouterStart);
    if (start) this.applyRouterStart(start);
  }

  private applyRouterStart(start: RouterStart): void {
    const interval = Math.max(1000, start.minimumRegisterIntervalInSeconds * 1000);
    if (interval !== this.registerIntervalMs) {
      this.registerIntervalMs = interval;
      this.scheduleRegister();
    }
    this.registerAll();
  }

  private async onFiles(msg: BusMessage): Promise<void> {
    let request: FilesRequest;
    try {
      request = JSON.parse(new TextDecoder().decode(msg.data)) as FilesRequest;
      for (const field of FILES_FIELDS) if (typeof request[field] !== 'string') throw new Error(`${field} must be a string`);
      for (const field of ['offset', 'length'] as const) {
        if (request[field] !== undefined && !Number.isSafeInteger(request[field])) throw new Error(`${field} must be an integer`);
      }
    } catch (err) {
      this.rejections.reject(msg.subject, (err as Error).message.slice(0, 120));
      msg.respond({ error: 'invalid files request', code: 'bad_path' } satisfies FilesReply);
      return;
    }
    const instance = this.instances.get(request.instance);
    if (!instance || instance.spec.appId !== request.droplet || instance.state === 'STOPPED' || instance.state === 'DELETED') {
      msg.respond({ error: 'no such instance on this DEA', code: 'unknown_instance' } satisfies FilesReply);
      return;
    }
    msg.respond(await readInstancePathAs(instance.runAs, instance.dir, request, {
      onFailure: (detail) => this.logger.warn('files request failed', { instance: instance.id, detail }),
    }));
  }

  /** `skiff ssh`: starts a session on a running or crashed instance of ours (bus/platform.ts). */
  private onSsh(msg: BusMessage): void {
    const request = this.parse(msg, validateSshRequest);
    if (!request) {
      msg.respond({ error: 'invalid ssh request', code: 'bad_request' } satisfies SshReply);
      return;
    }
    const instance = this.instances.get(request.instance);
    if (!instance || instance.spec.appId !== request.droplet) {
      msg.respond({ error: 'no such instance on this DEA', code: 'unknown_instance' } satisfies SshReply);
      return;
    }
    if (this.stopping || (instance.state !== 'RUNNING' && instance.state !== 'CRASHED')) {
      msg.respond({ error: `the instance is ${instance.state.toLowerCase()}: only a running or crashed instance takes ssh sessions`, code: 'unknown_instance' } satisfies SshReply);
      return;
    }
    let reply: SshReply;
    try {
      reply = this.sessions!.open(request, instance);
    } catch (err) {
      this.logger.warn('ssh session failed to start', { instance: instance.id, error: err });
      reply = { error: 'the session could not be started (see the DEA log)', code: 'failed' };
    }
    msg.respond(reply);
  }

  // ---- periodic ----

  private every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private scheduleRegister(): void {
    clearTimeout(this.registerTimer);
    if (this.stopping) return;
    this.registerTimer = setTimeout(() => {
      this.registerAll();
      this.scheduleRegister();
    }, this.registerIntervalMs);
    this.registerTimer.unref();
  }

  private advertise(force: boolean): void {
    if (this.stopping) return;
    const available = this.availableMemoryMb;
    if (available <= 0 && !force) return;
    const counts: Record<string, number> = {};
    for (const instance of this.instances.values()) {
      if (instance.reservesMemory) counts[instance.spec.appId] = (counts[instance.spec.appId] ?? 0) + 1;
    }
    const body: DeaAdvertise = { id: this.id, available_memory: available, runtimes: [...RUNTIMES], app_id_to_count: counts };
    this.publish(Subjects.deaAdvertise, body);
  }

  heartbeat(): void {
    if (this.stopping && this.instances.size === 0) return;
    const body: DeaHeartbeat = {
      dea: this.id,
      droplets: this.list()
        .filter((i) => i.reservesMemory)
        .map((i) => ({
          droplet: i.spec.appId,
          version: i.spec.version,
          instance: i.id,
          index: i.spec.index,
          state: i.state,
          state_timestamp: i.stateTimestamp,
        })),
    };
    this.publish(Subjects.deaHeartbeat, body);
  }

  /**
   * `dea.stats`: memory and each live or crashed instance's latest sample.
   * Disk sizes come from the last measurement (refreshed in the background,
   * at most every 10 s per instance: walking a large directory is slow).
   */
  usageStats(now = Date.now()): DeaStats {
    const instances: DeaStats['instances'] = [];
    for (const instance of this.instances.values()) {
      if (!instance.reservesMemory && instance.state !== 'CRASHED') continue;
      if (instance.reservesMemory) void instance.diskUsage();
      const usage = instance.currentUsage();
      instances.push({
        app: instance.spec.appId,
        version: instance.spec.version,
        instance: instance.id,
        index: instance.spec.index,
        state: instance.state,
        cpu: usage.cpu,
        mem_kb: Math.round(usage.rssBytes / 1024),
        disk_bytes: usage.diskBytes,
      });
    }
    return {
      dea: this.id,
      ...(this.settings.node !== undefined ? { node: this.settings.node } : {}),
      ts: now,
      memory: { total_mb: this.maxMemoryMb, reserved_mb: this.reservedMemoryMb },
      instances,
    };
  }

  status(): object {
    const counts: Partial<Record<InstanceState, number>> = {};
    for (const instance of this.instances.values()) counts[instance.state] = (counts[instance.state] ?? 0) + 1;
    return {
      id: this.id,
      index: this.settings.index,
      ip: this.settings.host,
      version: SKIFF_VERSION,
      max_memory: this.maxMemoryMb,
      reserved_memory: this.reservedMemoryMb,
      available_memory: this.availableMemoryMb,
      num_clients: this.list().filter((i) => i.reservesMemory).length,
      instances: counts,
      runtimes: [...RUNTIMES],
    };
  }

  private registration(instance: Instance): RouterRegister {
    return {
      host: this.settings.host,
      port: instance.port!,
      uris: instance.spec.uris,
      app: instance.spec.appId,
      private_instance_id: instance.id,
      private_instance_index: String(instance.spec.index),
      tags: { component: this.componentTag },
      ...(instance.spec.sessionAffinity === true && { options: { session_affinity: true } }),
    };
  }

  private register(instance: Instance): void {
    if (instance.port === undefined || instance.spec.uris.length === 0) return;
    this.publish(Subjects.routerRegister, this.registration(instance));
  }

  private unregister(instance: Instance): void {
    if (instance.port === undefined || instance.spec.uris.length === 0) return;
    this.publish(Subjects.routerUnregister, this.registration(instance));
  }

  private registerAll(): void {
    for (const instance of this.instances.values()) if (instance.state === 'RUNNING') this.register(instance);
  }

  private async sample(): Promise<void> {
    if (this.sampling) return;
    const live = this.list().filter((i) => i.pid !== undefined && (i.state === 'STARTING' || i.state === 'RUNNING' || i.state === 'STOPPING'));
    if (live.length === 0) return;
    this.sampling = true;
    try {
      const table = await readProcessTable();
      const now = Date.now();
      for (const instance of live) instance.sample(table, now);
    } catch (err) {
      this.logger.warn('cannot read /proc', { error: err });
    } finally {
      this.sampling = false;
    }
  }

  private async expireCrashed(): Promise<void> {
    const cutoff = Date.now() - this.settings.crashKeepMs;
    for (const instance of this.list()) {
      if (instance.state === 'CRASHED' && (instance.crashTimestamp ?? instance.stateTimestamp) * 1000 < cutoff) {
        await instance.stop('STOPPED');
      }
    }
  }

  /** Runs the periodic work now; for tests. */
  async sampleNow(): Promise<void> {
    await this.sample();
  }

  instanceDir(instanceId: string): string {
    return join(this.instancesDir, instanceId);
  }
}

function instanceFilterView(instance: Instance) {
  return {
    appId: instance.spec.appId,
    version: instance.spec.version,
    instanceId: instance.id,
    index: instance.spec.index,
    state: instance.state,
  };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

/** The `gid`s of a start's bound services (bus/messages.ts ServiceBinding), in order, without repeats. */
export function serviceGids(services: unknown[]): number[] {
  const gids: number[] = [];
  for (const service of services) {
    const gid = typeof service === 'object' && service !== null ? (service as { gid?: unknown }).gid : undefined;
    if (typeof gid === 'number' && Number.isInteger(gid) && !gids.includes(gid)) gids.push(gid);
  }
  return gids;
}

/**
 * The gids a start's services ask for, or why the start is refused: one
 * outside `range` (a start must never put an app into root's group, or any
 * other group of the host).
 */
export function checkServiceGids(services: unknown[], range: IdRange): number[] | string {
  const gids = serviceGids(services);
  const outside = gids.find((gid) => !inRange(range, gid));
  if (outside !== undefined) return `service gid ${outside} is outside this DEA's --service-gids ${formatRange(range)}: give the services nodes and the DEAs the same range`;
  return gids;
}

/** uid and gid of a user, from `id`. */
export function lookupUser(name: string): { uid: number; gid: number } {
  const ask = (flag: string) => {
    const out = spawnSync('id', [flag, name], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    const n = Number(out.stdout?.trim());
    if (out.status !== 0 || !Number.isInteger(n)) throw new DeaSetupError(`unknown user ${JSON.stringify(name)} for app instances (--user)`);
    return n;
  };
  const uid = ask('-u');
  if (uid === 0) throw new DeaSetupError('apps must not run as root: choose an unprivileged --user');
  return { uid, gid: ask('-g') };
}
