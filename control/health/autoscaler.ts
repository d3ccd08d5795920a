// The autoscaler: every `autoscale.interval` seconds, the health manager
// that holds the analysis lease looks at each started app with a policy,
// takes its figures from what the routers and DEAs publish (bus/app-stats.ts:
// request rate and p99 over the last WINDOW_MS, summed over routers, CPU
// summed over instances), decides (autoscaling.ts) and asks a controller to
// scale (AUTOSCALE_SUBJECT), which records the decision as an event. An app
// the health manager gave up on, or that is flapping, is left alone: more
// instances of a crashing app only crash more.

import { AUTOSCALE_WINDOW_MS, autoscaleFigures, type AppStatsCollector } from '../../bus/app-stats';
import { AUTOSCALE_SUBJECT, type AutoscaleReply, type AutoscaleRequest } from '../../bus/autoscale';
import type { ComponentConfig } from '../../bus/config';
import type { Bus } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import { desiredVersion, type AppDesiredState } from '../../bus/platform';
import { checkValue, knownSetting } from '../../bus/settings';
import { decide, type AppFigures, type AppMemo } from './autoscaling';

/** Figures are taken over this much of the routers' recent history. */
export const WINDOW_MS = AUTOSCALE_WINDOW_MS;
const REQUEST_TIMEOUT_MS = 10_000;

export interface AutoscalerDeps {
  bus: Bus;
  log: Logger;
  stats: AppStatsCollector;
  /** The `autoscale.*` settings of the config store (undefined: defaults). */
  config: ComponentConfig | undefined;
  isLeader: () => boolean;
  apps: () => Promise<AppDesiredState[]>;
  /** Running instances of the app's current version, by the health manager's heartbeats. */
  running: (app: AppDesiredState) => number;
  /** Why the app is not to be scaled now (given up on, flapping); undefined when it may be. */
  leftAlone: (app: AppDesiredState) => string | undefined;
}

export interface AutoscaleSettings {
  intervalMs: number;
  scaleInDelayMs: number;
}

export class Autoscaler {
  private readonly memos = new Map<string, AppMemo>();
  /** The last "why nothing happened" logged per app: said when it changes, not at every look. */
  private readonly said = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private looking = false;
  private closed = false;
  settings: AutoscaleSettings;

  constructor(private readonly deps: AutoscalerDeps) {
    this.settings = this.read();
  }

  start(): void {
    this.deps.config?.onChange(() => {
      const before = this.settings;
      this.settings = this.read();
      if (before.intervalMs !== this.settings.intervalMs || before.scaleInDelayMs !== this.settings.scaleInDelayMs) {
        this.deps.log.info('autoscale settings changed', { interval_s: this.settings.intervalMs / 1000, scale_in_delay_s: this.settings.scaleInDelayMs / 1000 });
      }
      if (before.intervalMs !== this.settings.intervalMs) this.schedule();
    });
    this.schedule();
  }

  stop(): void {
    this.closed = true;
    clearInterval(this.timer);
  }

  private schedule(): void {
    clearInterval(this.timer);
    if (this.closed) return;
    this.timer = setInterval(() => void this.look(), this.settings.intervalMs);
    this.timer.unref();
  }

  /** One look at every app with a policy. */
  async look(now = Date.now()): Promise<void> {
    if (this.looking || this.closed) return;
    this.looking = true;
    try {
      if (!this.deps.isLeader()) {
        // Whoever acts next starts its scale-in clocks afresh rather than from a stale memory.
        this.memos.clear();
        return;
      }
      const apps = (await this.deps.apps()).filter((app) => app.autoscale && app.state === 'STARTED' && desiredVersion(app) !== null);
      const ids = new Set(apps.map((app) => app.id));
      for (const id of this.memos.keys()) if (!ids.has(id)) this.memos.delete(id);
      for (const app of apps) {
        if (this.closed) return;
        await this.lookAt(app, now);
      }
    } catch (error) {
      this.deps.log.warn('autoscale look failed; the next one retries', { error });
    } finally {
      this.looking = false;
    }
  }

  private async lookAt(app: AppDesiredState, now: number): Promise<void> {
    const alone = this.deps.leftAlone(app);
    if (alone !== undefined) {
      this.memos.delete(app.id);
      this.say(app, `not autoscaling: ${alone}`);
      return;
    }
    const decision = decide({
      policy: app.autoscale!,
      desired: app.instances,
      running: this.deps.running(app),
      figures: this.figures(app.id),
      now,
      scaleInDelayMs: this.settings.scaleInDelayMs,
      memo: this.memos.get(app.id) ?? {},
    });
    this.memos.set(app.id, decision.memo);
    if (decision.kind === 'hold') {
      this.say(app, decision.why);
      return;
    }
    const request: AutoscaleRequest = { droplet: app.id, from: app.instances, to: decision.to, reason: decision.reason };
    let reply: AutoscaleReply;
    try {
      reply = await this.deps.bus.request<AutoscaleReply>(AUTOSCALE_SUBJECT, request, REQUEST_TIMEOUT_MS);
    } catch (error) {
      this.deps.log.warn('no controller took the autoscale request; the next look asks again', { app: app.name, error: (error as Error).message });
      return;
    }
    if (reply.ok) {
      this.deps.log.info('autoscale decision', { app: app.name, from: request.from, to: reply.instances, reason: request.reason, capped: reply.capped });
      this.said.delete(app.id);
    } else {
      this.deps.log.info('autoscale request refused', { app: app.name, from: request.from, to: request.to, error: reply.error });
    }
  }

  /** The app's figures now; a source not heard from leaves its figure undefined. */
  figures(appId: string): AppFigures {
    return autoscaleFigures(this.deps.stats, appId);
  }

  private say(app: AppDesiredState, why: string): void {
    if (this.said.get(app.id) === why) return;
    this.said.set(app.id, why);
    this.deps.log.debug('autoscale: holding', { app: app.name, why });
  }

  private read(): AutoscaleSettings {
    const seconds = (setting: string): number => {
      const def = knownSetting(`autoscale.${setting}`);
      const stored = this.deps.config?.get(setting);
      if (stored !== undefined) {
        const checked = checkValue(def, stored);
        if (checked.ok) return (checked.value as number) * 1000;
        this.deps.log.warn('ignoring invalid setting, using the default', { key: def.key, error: checked.error });
      }
      return (def.default as number) * 1000;
    };
    return { intervalMs: seconds('interval'), scaleInDelayMs: seconds('scale_in_delay') };
  }
}
