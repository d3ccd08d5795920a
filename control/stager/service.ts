// The stager on the bus: takes staging requests from `vcap.stager.<queue>` in
// the queue group of all stagers (one stager takes each job), validates them,
// runs at most `maxJobs` at a time and queues a few more, and replies to each.

import type { Bus, BusMessage, Subscription } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import { isStagerFailure, type StagerReply, type StagerRequest } from '../../bus/messages';
import { STAGER_QUEUE_GROUP } from '../../bus/platform';
import { Subjects } from '../../bus/subjects';
import { decode, RejectionCounter, validateStagerRequest } from '../../bus/validate';
import { StagerMetrics } from './metrics';

export interface Stages {
  stage(request: StagerRequest, signal?: AbortSignal): Promise<StagerReply>;
}

export interface StagerServiceOptions {
  queue: string;
  /** Jobs staged at the same time. */
  maxJobs: number;
  /** Jobs waiting for a slot; beyond, a request is answered "busy" at once. */
  maxWaiting: number;
}

interface Waiting {
  request: StagerRequest;
  msg: BusMessage;
}

export class StagerService {
  readonly rejections: RejectionCounter;
  readonly metrics = new StagerMetrics(() => ({ running: this.running, waiting: this.waiting.length }));
  private subscription: Subscription | undefined;
  private readonly waiting: Waiting[] = [];
  private running = 0;
  private readonly abort = new AbortController();
  private readonly jobs = new Set<Promise<void>>();
  private stopping = false;
  private readonly opts: StagerServiceOptions;

  constructor(
    private readonly bus: Bus,
    private readonly stager: Stages,
    opts: StagerServiceOptions,
    private readonly logger: Logger,
  ) {
    this.rejections = new RejectionCounter(logger);
    this.opts = { ...opts };
  }

  get subject(): string {
    return Subjects.stager(this.opts.queue);
  }

  get activeJobs(): number {
    return this.running;
  }

  get waitingJobs(): number {
    return this.waiting.length;
  }

  get maxJobs(): number {
    return this.opts.maxJobs;
  }

  /** Applies a new job limit at once: more slots start waiting jobs; fewer let running jobs finish. */
  setMaxJobs(maxJobs: number): void {
    this.opts.maxJobs = maxJobs;
    while (this.running < this.opts.maxJobs && this.waiting.length > 0 && !this.stopping) this.launch(this.waiting.shift()!);
  }

  start(): void {
    this.subscription = this.bus.subscribe(this.subject, (msg) => this.onRequest(msg), { queue: STAGER_QUEUE_GROUP });
  }

  private onRequest(msg: BusMessage): void {
    const decoded = decode(msg.data, validateStagerRequest);
    if (!decoded.ok) {
      this.rejections.reject(msg.subject, decoded.error);
      this.metrics.jobs.inc({ result: 'invalid' });
      msg.respond({ error: `invalid staging request: ${decoded.error}`, log: '' });
      return;
    }
    if (!msg.reply) {
      // Nobody would learn the outcome: a publish, not a request.
      this.rejections.reject(msg.subject, 'staging request without a reply subject');
      return;
    }
    if (this.stopping) {
      this.metrics.jobs.inc({ result: 'busy' });
      msg.respond({ error: 'the stager is stopping; push again', log: '' });
      return;
    }
    if (this.running >= this.opts.maxJobs) {
      if (this.waiting.length >= this.opts.maxWaiting) {
        this.metrics.jobs.inc({ result: 'busy' });
        this.logger.warn('stager busy, job refused', { app: decoded.value.app, running: this.running, waiting: this.waiting.length });
        msg.respond({ error: 'all stagers are busy; push again in a minute', log: '' });
        return;
      }
      this.waiting.push({ request: decoded.value, msg });
      return;
    }
    this.launch({ request: decoded.value, msg });
  }

  private launch(job: Waiting): void {
    this.running++;
    const timer = this.metrics.duration.startTimer();
    const work = this.stager
      .stage(job.request, this.abort.signal)
      .catch((err: unknown): StagerReply => {
        this.logger.error('staging failed unexpectedly', { app: job.request.app, error: err });
        return { error: 'internal stager error', log: '' };
      })
      .then((reply) => {
        const result = isStagerFailure(reply) ? 'failed' : 'staged';
        timer({ result });
        this.metrics.jobs.inc({ result });
        try {
          job.msg.respond(reply);
        } catch (err) {
          // Too big for the server's max_payload, most likely: the outcome matters more than the log.
          this.logger.warn('cannot reply to staging request, retrying with a short log', { app: job.request.app, error: err });
          try {
            job.msg.respond({ ...reply, log: reply.log.slice(-16 * 1024) });
          } catch (again) {
            this.logger.error('cannot reply to staging request', { app: job.request.app, error: again });
          }
        }
      })
      .finally(() => {
        this.running--;
        this.jobs.delete(work);
        if (this.running < this.opts.maxJobs) {
          const next = this.waiting.shift();
          if (next) this.launch(next);
        }
      });
    this.jobs.add(work);
  }

  /**
   * Stops taking jobs, answers the waiting ones, cancels the running ones
   * (their commands are killed; they reply "cancelled") and waits for their replies.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.subscription?.unsubscribe();
    for (const job of this.waiting.splice(0)) {
      this.metrics.jobs.inc({ result: 'busy' });
      job.msg.respond({ error: 'the stager is stopping; push again', log: '' });
    }
    this.abort.abort();
    await Promise.all(this.jobs);
  }
}
