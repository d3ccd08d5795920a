// Waiting for an app's instances to run, after push, start, scale and
// restart (design.md, "The first minutes"): progress counts only the
// instances of this start, and the wait ends early, with the reason, when
// they cannot run: every one crashed, the app is FLAPPING, no DEA can take
// it, or one crashed right after it came up (killed over its memory).

import type { IncomingMessage } from 'node:http';
import { ApiError, readBody, type Api, type Query } from './api';
import type { App, Crash, InstanceInfo } from './types';

export class CliError extends Error {
  override name = 'CliError';
}

/** The wait ended because the instances cannot run; `crashed` is the instance whose logs tell why. */
export class StartFailure extends CliError {
  override name = 'StartFailure';
  constructor(
    message: string,
    readonly crashed?: InstanceInfo,
  ) {
    super(message);
  }
}

/**
 * Which instances belong to the start being waited for: those of the app's
 * current version; when the command did not make a new version (scaling
 * out), a crashed one only if it crashed after the change. Times are the
 * platform's (epoch seconds), never the CLI's clock.
 */
export interface CurrentStart {
  version: string | null | undefined;
  newVersion: boolean;
  since: number;
}

export interface InstanceSummary {
  running: number;
  done: boolean;
  /** "1/2 running (1 STARTING)" */
  text: string;
  /** Every index has crashed since the start and none runs. */
  allCrashed: boolean;
  /** Instances of this start that crashed, newest first. */
  crashed: InstanceInfo[];
  /** Ids of this start's running instances. */
  running_ids: string[];
}

const LIVE = new Set(['RUNNING', 'STARTING']);

/** One state per index (RUNNING, else STARTING, else CRASHED, else DOWN), from this start's instances only. */
export function summariseInstances(instances: readonly InstanceInfo[], desired: number, start: CurrentStart): InstanceSummary {
  const ours = (i: InstanceInfo) =>
    (start.version == null || i.version === undefined || i.version === start.version) &&
    (start.newVersion || LIVE.has(i.state) || (i.since ?? Infinity) >= start.since);
  const counts = new Map<string, number>();
  const crashed: InstanceInfo[] = [];
  const runningIds: string[] = [];
  let running = 0;
  let crashedIndices = 0;
  for (let index = 0; index < desired; index++) {
    const here = instances.filter((i) => i.index === index && ours(i));
    const crashes = here.filter((i) => i.state === 'CRASHED');
    crashed.push(...crashes);
    if (crashes.length > 0) crashedIndices++;
    const state = here.some((i) => i.state === 'RUNNING') ? 'RUNNING' : here.some((i) => i.state === 'STARTING') ? 'STARTING' : crashes.length > 0 ? 'CRASHED' : 'DOWN';
    if (state === 'RUNNING') {
      running++;
      runningIds.push(...here.filter((i) => i.state === 'RUNNING' && i.instance).map((i) => i.instance!));
    } else counts.set(state, (counts.get(state) ?? 0) + 1);
  }
  const order = ['STARTING', 'CRASHED', 'DOWN'];
  const detail = order.filter((s) => counts.has(s)).map((s) => `${counts.get(s)} ${s}`).join(', ');
  crashed.sort((a, b) => (b.since ?? 0) - (a.since ?? 0));
  return {
    running,
    done: running >= desired,
    text: `${running}/${desired} running${detail === '' ? '' : ` (${detail})`}`,
    allCrashed: desired > 0 && running === 0 && crashedIndices === desired,
    crashed,
    running_ids: runningIds,
  };
}

/**
 * How long instances must stay up once all run: longer than the DEA's
 * memory sampling (every 2 s), plus a poll, so that an instance killed over
 * its limit just after it began to listen fails the command instead of
 * passing for running.
 */
export const SETTLE_MS = 3000;

export interface WaitOptions {
  api: Api;
  name: string;
  query: Query;
  /** The app's version before the command; a different one now means every instance of it is this start's. */
  versionBefore: string | null | undefined;
  timeoutMs: number;
  pollMs?: number;
  settleMs?: number;
  /** Called when the summary text changes. */
  onProgress?: (text: string) => void;
}

/** Resolves with the app once its instances run and stayed up; throws StartFailure when they cannot. */
export async function waitForInstances(options: WaitOptions): Promise<App> {
  const { api, name, query } = options;
  const path = `/apps/${encodeURIComponent(name)}`;
  const deadline = Date.now() + options.timeoutMs;
  const settleMs = options.settleMs ?? SETTLE_MS;
  let last = '';
  let settling: { since: number; ids: Set<string> } | undefined;
  for (;;) {
    const [app, reply] = await Promise.all([
      api.json<App>('GET', path, { query }),
      api.json<{ instances?: InstanceInfo[] }>('GET', `${path}/instances`, { query }),
    ]);
    const instances = reply?.instances ?? [];
    if (app.placement_error) throw new StartFailure(`${name} cannot be placed: ${app.placement_error}`);
    const start: CurrentStart = { version: app.version, newVersion: app.version !== options.versionBefore, since: app.meta?.last_updated ?? 0 };
    const summary = summariseInstances(instances, app.instances, start);
    if (summary.text !== last) {
      last = summary.text;
      options.onProgress?.(summary.text);
    }
    if (summary.allCrashed) {
      throw new StartFailure(`${name} did not start: ${app.instances === 1 ? 'its instance' : `all ${app.instances} instances`} crashed`, summary.crashed[0]);
    }
    // Some index runs, another keeps crashing: the health manager's verdict, since one crash may be bad luck.
    if (app.state === 'FLAPPING') {
      throw new StartFailure(`${name} keeps crashing (FLAPPING: the platform backs off its restarts)`, summary.crashed[0]);
    }
    if (settling !== undefined) {
      const fell = instances.find((i) => i.instance !== undefined && settling!.ids.has(i.instance) && i.state === 'CRASHED');
      if (fell !== undefined) throw new StartFailure(`${name} crashed right after it started`, fell);
    }
    if (!summary.done) settling = undefined;
    else if (settling === undefined) settling = { since: Date.now(), ids: new Set(summary.running_ids) };
    else if (Date.now() - settling.since >= settleMs) return app;
    if (Date.now() >= deadline) {
      throw new CliError(`app "${name}" is not running after ${Math.round(options.timeoutMs / 1000)} s: ${summary.text}; see \`skiff logs ${name}\` and \`skiff crashes ${name}\``);
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000));
  }
}

/** Lines of each log shown when an instance crashed. */
export const LOG_LINES = 20;
const LOG_TAIL_BYTES = 8192;
/** The crash is recorded by the controller a moment after the DEA reports it. */
const CRASH_RECORD_WAIT_MS = 3000;

export interface CrashReport {
  /** "app instance exited (exit status 3)", "out of memory", ... */
  reason: string;
  /** The last lines of each non-empty log, stderr first. */
  logs: Array<{ path: string; lines: string[] }>;
}

/** Why an instance crashed and what it last wrote, from `GET .../crashes` and the files API (as `skiff logs`). */
export async function crashReport(api: Api, name: string, query: Query, instance: InstanceInfo): Promise<CrashReport> {
  const path = `/apps/${encodeURIComponent(name)}`;
  let crash: Crash | undefined;
  const until = Date.now() + CRASH_RECORD_WAIT_MS;
  for (;;) {
    const crashes = (await api.json<Crash[]>('GET', `${path}/crashes`, { query }).catch(() => [])) ?? [];
    crash = crashes.find((c) => c.instance === instance.instance);
    if (crash !== undefined || Date.now() >= until) break;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  const reason =
    crash === undefined
      ? 'crashed (no reason recorded yet)'
      : `${crash.reason ?? 'crashed'}${crash.exit_status === null || crash.exit_status === undefined ? '' : ` (exit status ${crash.exit_status})`}`;
  const logs: CrashReport['logs'] = [];
  for (const file of ['logs/stderr.log', 'logs/stdout.log']) {
    const text = await tail(api, `${path}/instances/${encodeURIComponent(instance.instance ?? String(instance.index))}/files/${file}`, query);
    const lines = text.split('\n').map(printable);
    while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
    // The first line of a tail is most likely cut in the middle.
    if (text.length >= LOG_TAIL_BYTES) lines.shift();
    const shown = lines.slice(-LOG_LINES);
    while (shown.length > 0 && shown[0]!.trim() === '') shown.shift();
    if (shown.length > 0) logs.push({ path: file, lines: shown });
  }
  return { reason, logs };
}

async function tail(api: Api, path: string, query: Query): Promise<string> {
  let response: IncomingMessage;
  try {
    response = await api.stream('GET', path, { query: { ...query, tail: LOG_TAIL_BYTES } });
  } catch (error) {
    // No such log, or its DEA is gone: the reason alone is still worth telling.
    if (error instanceof ApiError) return '';
    throw error;
  }
  return (await readBody(response, LOG_TAIL_BYTES * 2)).toString('utf8');
}

/** An app's output goes to a terminal: no escape sequences or other control characters but tabs. */
function printable(line: string): string {
  return line.replace(/\r$/, '').replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '?');
}
