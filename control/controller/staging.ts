// Staging jobs: the stager request for uploaded bits, its outcome recorded on
// the app, and its log streamed to `GET /apps/:name/staging_log` readers
// while it runs (and kept in KV afterwards).

import { BusRequestError, type Bus, type Subscription } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import { isStagerFailure, type StagerRequest } from '../../bus/messages';
import { stagingLogSubject } from '../../bus/platform';
import { Subjects } from '../../bus/subjects';
import { validateStagerReply } from '../../bus/validate';
import { applyStaged } from './desired';
import { recordEvents } from './events';
import type { Exchange } from './http';
import type { AppRecord, Store } from './store';

const decoder = new TextDecoder();
/** Bytes of log kept in memory per running job; older lines are dropped (the reply carries the whole log). */
const MAX_LIVE_LOG = 1024 * 1024;
const REMOTE_POLL_MS = 1000;

/** The log of one staging job as it grows; readers follow it until the job ends. */
class LogSession {
  text = '';
  finished = false;
  private readonly followers = new Set<(chunk: string | null) => void>();

  append(chunk: string): void {
    if (chunk === '' || this.finished) return;
    this.text = (this.text + chunk).slice(-MAX_LIVE_LOG);
    for (const follow of this.followers) follow(chunk);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const follow of this.followers) follow(null);
    this.followers.clear();
  }

  follow(listener: (chunk: string | null) => void): () => void {
    this.followers.add(listener);
    return () => this.followers.delete(listener);
  }
}

export interface StagingOptions {
  queue: string;
  timeoutMs: number;
}

export class Staging {
  /** Jobs this controller runs, by app id. */
  private readonly sessions = new Map<string, { stagingId: string; log: LogSession }>();

  constructor(
    private readonly bus: Bus,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly options: StagingOptions,
    /** Called with the app before and after a successful staging, to start the new version. */
    private readonly onStaged: (before: AppRecord, after: AppRecord) => Promise<void>,
  ) {}

  /** Runs the staging job of `app` (already STAGING with `staging_id` and `bits` set) in the background. */
  run(app: AppRecord): Promise<void> {
    const stagingId = app.staging_id!;
    const session = new LogSession();
    this.sessions.get(app.id)?.log.finish();
    this.sessions.set(app.id, { stagingId, log: session });
    return this.stage(app, stagingId, session).catch((err: unknown) => {
      this.log.error('staging failed unexpectedly', { app: app.name, error: err });
    }).finally(() => {
      session.finish();
      if (this.sessions.get(app.id)?.log === session) this.sessions.delete(app.id);
    });
  }

  private async stage(app: AppRecord, stagingId: string, session: LogSession): Promise<void> {
    const subscription: Subscription = this.bus.subscribe(stagingLogSubject(app.id), (msg) => session.append(decoder.decode(msg.data)));
    let outcome: { ok: true; droplet: Parameters<typeof applyStaged>[1] } | { ok: false; error: string };
    let replyLog = '';
    try {
      // The log subscription must reach the server before the stager starts talking.
      await this.bus.flush();
      const request: StagerRequest = {
        app: app.id,
        bits: app.bits!.object,
        sha: app.bits!.sha256,
        manifest: { command: app.command, env: app.env },
      };
      this.log.info('staging', { app: app.name, droplet: app.id, bits: request.bits });
      const reply = validateStagerReply(await this.bus.request(Subjects.stager(this.options.queue), request, this.options.timeoutMs));
      if (!reply.ok) {
        outcome = { ok: false, error: `the stager sent an invalid reply (${reply.error})` };
      } else if (isStagerFailure(reply.value)) {
        replyLog = reply.value.log;
        outcome = { ok: false, error: reply.value.error };
      } else {
        const r = reply.value;
        replyLog = r.log;
        outcome = { ok: true, droplet: { sha1: r.sha1, object: r.droplet, runtime: r.runtime, framework: r.framework, command: r.start_command } };
      }
    } catch (err) {
      outcome = { ok: false, error: describeStagerError(err, this.options) };
    } finally {
      subscription.unsubscribe();
    }
    // Lines published on the subject may have been missed (e.g. a stager that does not stream): the reply has them all.
    if (session.text === '' && replyLog !== '') session.append(replyLog);
    // A stager that failed says why in its log; the controller adds the reason only when nothing did (no stager, a timeout).
    if (!outcome.ok && !session.text.includes(outcome.error)) session.append(`\nstaging failed: ${outcome.error}\n`);

    const now = Math.floor(Date.now() / 1000);
    const updated = await this.store.updateApp(app.id, (current) => {
      // A newer upload took over: its job decides.
      if (current.staging_id !== stagingId) return undefined;
      if (outcome.ok) return applyStaged(current, outcome.droplet, now);
      current.package_state = 'FAILED';
      current.staging_error = outcome.error;
      current.staging_id = null;
      current.updated = now;
      return current;
    });
    if (updated === undefined || updated.before.staging_id !== stagingId) {
      this.log.info('staging result dropped: app deleted or staged again', { droplet: app.id });
      return;
    }
    await this.store.putStagingLog(app.id, session.text).catch((err: unknown) => this.log.warn('could not keep the staging log', { droplet: app.id, error: err }));
    // Readers learn the outcome from the app now; starting the new version is not part of the log.
    session.finish();
    if (outcome.ok) {
      this.log.info('staged', { app: app.name, droplet: outcome.droplet.sha1, runtime: outcome.droplet.runtime });
      await recordEvents(this.store, this.log, app.id, 'platform', [
        { type: 'staged', description: `${outcome.droplet.framework} (${outcome.droplet.runtime}): ${outcome.droplet.command}; droplet ${outcome.droplet.sha1.slice(0, 12)}` },
      ]);
      await this.onStaged(updated.before, updated.after);
    } else {
      this.log.warn('staging failed', { app: app.name, error: outcome.error });
      await recordEvents(this.store, this.log, app.id, 'platform', [{ type: 'staging_failed', description: outcome.error }]);
    }
  }

  /**
   * Streams the log of the app's current (or last) staging to a reader: what
   * there is so far, then new lines until the job ends.
   */
  async streamLog(app: AppRecord, exchange: Exchange): Promise<void> {
    const headers = { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' };
    const local = this.sessions.get(app.id);
    if (local !== undefined && !local.log.finished) {
      exchange.startStream(200, headers);
      await exchange.write(local.log.text);
      await new Promise<void>((resolve) => {
        const unfollow = local.log.follow((chunk) => {
          if (chunk === null) resolve();
          else void exchange.write(chunk);
        });
        exchange.onAbort(() => {
          unfollow();
          resolve();
        });
      });
      exchange.end();
      return;
    }
    if (app.package_state !== 'STAGING') {
      exchange.send(200, await this.store.stagingLog(app.id), headers);
      return;
    }
    // Another controller runs this job: follow its log on the bus until the app leaves STAGING.
    exchange.startStream(200, headers);
    const subscription = this.bus.subscribe(stagingLogSubject(app.id), (msg) => void exchange.write(decoder.decode(msg.data)));
    try {
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, REMOTE_POLL_MS));
        if (exchange.isAborted) return;
        const current = await this.store.getApp(app.id);
        if (current === undefined || current.package_state !== 'STAGING') break;
      }
    } finally {
      subscription.unsubscribe();
    }
    exchange.end();
  }
}

function describeStagerError(err: unknown, options: StagingOptions): string {
  if (err instanceof BusRequestError) {
    if (err.reason === 'no-responders') return `no stager is running (nothing answers on ${Subjects.stager(options.queue)})`;
    if (err.reason === 'timeout') return `staging took longer than ${Math.round(options.timeoutMs / 1000)} s and was given up`;
  }
  return `staging request failed: ${err instanceof Error ? err.message : String(err)}`;
}
