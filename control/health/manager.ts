// The health manager on the bus: keeps actual state from `dea.heartbeat` and
// `droplet.exited`, reads desired state from the apps bucket on every pass
// (and at once on `droplet.updated` or a crash), and, while it holds the
// lease, sends the START/STOP requests of the analysis to the controllers on
// `cloudcontrollers.hm.requests`. Answers `healthmanager.status` and
// `healthmanager.health` in the queue group `hm`, so one manager answers.

import { randomUUID } from 'node:crypto';
import type { ComponentConfig } from '../../bus/config';
import type { Bus, BusMessage, Subscription } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import type { HealthmanagerHealthReply, HmRequest } from '../../bus/messages';
import { AppStatsCollector } from '../../bus/app-stats';
import { APPS_BUCKET, desiredVersion, HM_GIVEUP_SUBJECT, type AppDesiredState, type HmGiveUp } from '../../bus/platform';
import { Subjects } from '../../bus/subjects';
import {
  decode,
  RejectionCounter,
  validateDeaHeartbeat,
  validateDropletExited,
  validateDropletUpdated,
  validateHealthmanagerHealthRequest,
  validateHealthmanagerStatusRequest,
  validateHmRequest,
  type Validator,
} from '../../bus/validate';
import { ActualState, isLive } from './actual';
import { Autoscaler, WINDOW_MS } from './autoscaler';
import { analyze } from './analysis';
import { DesiredState } from './desired';
import { hasGivenUp, isFlapping } from './flapping';
import { Ledger } from './ledger';
import { HealthMetrics } from './metrics';
import { Lease } from './lease';
import { resolveSettings, type HealthSettings } from './settings';

/** Queue group of health managers on `healthmanager.status` / `healthmanager.health`. */
export const HM_QUEUE = 'hm';
/** The lease outlives a few missed passes, and never less than this. */
const MIN_LEASE_TTL_MS = 3000;

export interface HealthManagerOptions {
  /** Settings given by flag or environment: they beat the config store. */
  overrides?: Partial<HealthSettings>;
  /** The config store's `autoscale.*` settings (undefined: defaults). */
  autoscaleConfig?: ComponentConfig;
  random?: () => number;
}

export class HealthManager {
  readonly id = randomUUID();
  readonly actual = new ActualState();
  readonly ledger: Ledger;
  readonly rejections: RejectionCounter;
  readonly metrics = new HealthMetrics(() => this.leader);
  settings: HealthSettings;
  leader = false;
  private readonly subscriptions: Subscription[] = [];
  private desired: DesiredState | undefined;
  private lease: Lease | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stats: AppStatsCollector | undefined;
  private autoscaler: Autoscaler | undefined;
  private soonTimer: NodeJS.Timeout | undefined;
  private passing = false;
  private passAgain = false;
  private closed = false;

  constructor(
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly config: ComponentConfig | undefined,
    private readonly options: HealthManagerOptions = {},
  ) {
    this.rejections = new RejectionCounter(log);
    this.ledger = new Ledger(options.random);
    this.settings = this.currentSettings();
  }

  async start(): Promise<void> {
    this.desired = await DesiredState.open(this.bus);
    this.lease = await Lease.open(this.bus, this.id);
    this.config?.onChange(() => this.applySettings());
    this.listen(Subjects.deaHeartbeat, validateDeaHeartbeat, (beat) => this.actual.heartbeat(beat, Date.now()));
    this.listen(Subjects.dropletExited, validateDropletExited, (exit) => {
      this.actual.exited(exit);
      if (exit.reason === 'DEA_SHUTDOWN' || exit.reason === 'DEA_EVACUATION') {
        this.ledger.vacated(exit.droplet, exit.version, exit.index, Date.now());
        this.soon();
      }
      if (exit.reason !== 'CRASHED') return;
      const since = exit.crash_timestamp ?? Math.floor(Date.now() / 1000);
      const before = this.ledger.crashCount(exit.droplet, exit.version, exit.index, Date.now(), this.settings);
      const count = this.ledger.crash(exit.droplet, exit.version, exit.index, exit.instance, Date.now(), since, this.settings);
      // Told once, by the manager that acts, so that one event says why nothing restarts any more.
      if (this.leader && hasGivenUp(count) && !hasGivenUp(before)) {
        const notice: HmGiveUp = { droplet: exit.droplet, version: exit.version, index: exit.index, crashes: count.crashes };
        this.bus.publish(HM_GIVEUP_SUBJECT, notice);
        this.metrics.decisions.inc({ kind: 'given_up' });
        this.log.info('giving up on an index: no more restarts until the app changes', { ...notice });
      }
      this.log.info('instance crashed', {
        droplet: exit.droplet, version: exit.version, index: exit.index, instance: exit.instance, crashes: count.crashes,
        flapping: isFlapping(count), restart_in_s: count.restartAt === Infinity ? 'never' : Math.max(0, Math.round((count.restartAt - Date.now()) / 100) / 10),
      });
      this.soon();
    });
    this.listen(Subjects.dropletUpdated, validateDropletUpdated, () => this.soon());
    // Every manager records what any of them asked for, so a takeover does not ask again at once.
    this.listen(Subjects.hmRequests, validateHmRequest, (request) => this.remember(request, Date.now()));
    this.listen(Subjects.healthmanagerStatus, validateHealthmanagerStatusRequest, (request, msg) => {
      if (request.state === 'FLAPPING') msg.respond({ indices: this.ledger.flapping(request.droplet, request.version, Date.now(), this.settings) });
      else msg.respond({ instances: this.ledger.crashedInstances(request.droplet) });
    }, HM_QUEUE);
    this.listen(Subjects.healthmanagerHealth, validateHealthmanagerHealthRequest, (request, msg) => {
      for (const { droplet, version } of request.droplets) {
        const reply: HealthmanagerHealthReply = { droplet, version, healthy: this.actual.healthy(droplet, version) };
        msg.respond(reply);
      }
    }, HM_QUEUE);
    this.stats = new AppStatsCollector(this.bus, this.log, { historyMs: 2 * WINDOW_MS });
    this.stats.start();
    const desired = this.desired;
    this.autoscaler = new Autoscaler({
      bus: this.bus,
      log: this.log,
      stats: this.stats,
      config: this.options.autoscaleConfig,
      isLeader: () => this.leader,
      apps: async () => (await desired.list()).apps,
      running: (app) => {
        const version = desiredVersion(app);
        const indices = new Set(this.actual.ofDroplet(app.id).filter((i) => i.state === 'RUNNING' && i.version === version && i.index < app.instances).map((i) => i.index));
        return indices.size;
      },
      leftAlone: (app) => this.leftAlone(app),
    });
    this.autoscaler.start();
    await this.bus.flush();
    // DEAs answer with a heartbeat at once, so actual state fills before the first pass.
    this.bus.publish(Subjects.healthmanagerStart, {});
    this.schedule();
  }

  async stop(): Promise<void> {
    this.closed = true;
    this.autoscaler?.stop();
    this.stats?.stop();
    clearInterval(this.timer);
    clearTimeout(this.soonTimer);
    for (const sub of this.subscriptions.splice(0)) sub.unsubscribe();
    if (this.leader) await this.lease?.release().catch(() => undefined);
    this.leader = false;
  }

  /** One pass: lease, desired state, lost instances, and (as leader) the requests. */
  async pass(): Promise<void> {
    if (this.closed || this.desired === undefined || this.lease === undefined) return;
    if (this.passing) {
      this.passAgain = true;
      return;
    }
    this.passing = true;
    try {
      do {
        this.passAgain = false;
        await this.passOnce(this.desired, this.lease);
      } while (this.passAgain && !this.closed);
    } catch (err) {
      this.metrics.failedPasses.inc();
      this.log.warn('analysis pass failed; next pass retries', { error: err });
    } finally {
      this.passing = false;
    }
  }

  private async passOnce(desired: DesiredState, lease: Lease): Promise<void> {
    this.metrics.passes.inc();
    const settings = this.settings;
    const leader = await lease.acquire(Date.now(), Math.max(MIN_LEASE_TTL_MS, 3 * settings.analysisIntervalMs));
    if (leader !== this.leader) this.log.info(leader ? 'took the analysis lease: acting' : 'another health manager acts: watching', { id: this.id });
    this.leader = leader;
    const { apps, unreadable } = await desired.list();
    for (const { key, error } of unreadable) this.rejections.reject(`${APPS_BUCKET} ${key}`, error);
    if (this.closed) return;
    const now = Date.now();
    for (const lost of this.actual.pruneLost(now, settings.dropletLostMs)) {
      this.log.info('instance lost: no heartbeat', { droplet: lost.droplet, index: lost.index, instance: lost.instance, dea: lost.dea });
    }
    const liveIds = new Set(apps.flatMap((app) => this.actual.ofDroplet(app.id).filter(isLive).map((i) => i.instance)));
    this.ledger.sync(apps, now, settings, liveIds);
    if (!leader) return;
    const names = new Map(apps.map((app) => [app.id, app.name]));
    for (const request of analyze(apps, this.actual, this.ledger, now, settings)) {
      this.bus.publish(Subjects.hmRequests, request);
      if (request.op === 'START') this.metrics.decisions.inc({ kind: request.flapping ? 'flapping' : 'start' }, request.indices.length);
      else this.metrics.decisions.inc({ kind: 'stop' }, request.instances.length);
      if (request.op === 'START') {
        this.log.info('asking to start instances', { app: names.get(request.droplet), droplet: request.droplet, version: request.version, indices: request.indices.join(','), flapping: request.flapping });
      } else {
        this.log.info('asking to stop instances', { app: names.get(request.droplet), droplet: request.droplet, instances: request.instances.join(',') });
      }
    }
  }

  /** Why the autoscaler must not scale the app: more instances of a crashing app only crash more. */
  private leftAlone(app: AppDesiredState): string | undefined {
    const version = desiredVersion(app);
    if (version === null) return 'not staged';
    const now = Date.now();
    for (let index = 0; index < app.instances; index++) {
      if (this.ledger.givenUp(app.id, version, index, now, this.settings)) return `the health manager gave up on index ${index}`;
    }
    if (this.ledger.flapping(app.id, version, now, this.settings).length > 0) return 'flapping';
    return undefined;
  }

  private remember(request: HmRequest, now: number): void {
    if (request.op === 'START') this.ledger.started(request.droplet, request.version, request.indices, now);
    else this.ledger.stopAsked(request.instances, now);
  }

  private listen<T>(subject: string, validate: Validator<T>, handle: (value: T, msg: BusMessage) => void, queue?: string): void {
    this.subscriptions.push(
      this.bus.subscribe(subject, (msg) => {
        const decoded = decode(msg.data, validate);
        if (!decoded.ok) {
          this.rejections.reject(msg.subject, decoded.error);
          return;
        }
        handle(decoded.value, msg);
      }, queue === undefined ? {} : { queue }),
    );
  }

  /** A pass right away (coalesced), for a crash or a change of desired state. */
  private soon(): void {
    if (this.closed || this.soonTimer !== undefined) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      void this.pass();
    }, 50);
    this.soonTimer.unref();
  }

  private schedule(): void {
    clearInterval(this.timer);
    if (this.closed) return;
    this.timer = setInterval(() => void this.pass(), this.settings.analysisIntervalMs);
    this.timer.unref();
    this.soon();
  }

  private currentSettings(): HealthSettings {
    return resolveSettings(this.config?.all() ?? {}, this.options.overrides ?? {}, (setting, error) =>
      this.log.warn('ignoring invalid setting, using the default', { key: `health.${setting}`, error }),
    );
  }

  private applySettings(): void {
    const before = this.settings;
    this.settings = this.currentSettings();
    if (JSON.stringify(before) === JSON.stringify(this.settings)) return;
    this.log.info('settings changed', { ...this.settings });
    if (before.analysisIntervalMs !== this.settings.analysisIntervalMs) this.schedule();
  }
}
