// `skiff autoscale APP --min N --max M [--target-rps R] [--target-p99-ms L] [--target-cpu P]`
// sets the app's policy (PUT /apps/:name {"autoscale"}), `--off` removes it,
// and without flags it shows the policy, the figures the autoscaler sees now
// (GET /apps/:name/autoscale) and its last decisions (the app's events). `skiff push` takes the same flags (and manifest.yml's
// `autoscale:`).

import type { FlagValue } from '../../bus/flags';
import { checkAutoscalePolicy, describePolicy, type AutoscalePolicy } from '../../bus/autoscale';
import { checkAppName, checkPositionals, UsageError } from './args';
import { getApp, notFoundAs, updateApp } from './apps';
import { appPath, groupQuery, type Context } from './context';
import type { CommandArgs } from './registry';
import { formatFields, formatTable } from './table';
import { formatTimestamp } from './time';

export const AUTOSCALE_USAGE = 'skiff autoscale APP --min N --max M [--target-rps R] [--target-p99-ms L] [--target-cpu P] | --off';

const FLAG_FIELDS: ReadonlyArray<[string, keyof AutoscalePolicy]> = [
  ['min', 'min'],
  ['max', 'max'],
  ['target-rps', 'target_rps'],
  ['target-p99-ms', 'target_p99_ms'],
  ['target-cpu', 'target_cpu'],
];

/** Event types that tell what the autoscaler did (control/API.md). */
const AUTOSCALE_EVENTS = new Set(['autoscale', 'autoscaled', 'autoscale_capped']);
const LAST_DECISIONS = 10;

/**
 * The policy the flags make of `base` (the app's or the manifest's), or
 * undefined when no policy flag was given. Checked by the API's rules, each
 * error one line naming the flag.
 */
export function policyFromFlags(values: Record<string, FlagValue | undefined>, base?: AutoscalePolicy | null): AutoscalePolicy | undefined {
  if (!FLAG_FIELDS.some(([flag]) => values[flag] !== undefined)) return undefined;
  const merged: Record<string, unknown> = { ...(base ?? {}) };
  for (const [flag, field] of FLAG_FIELDS) if (values[flag] !== undefined) merged[field] = values[flag];
  if (merged.min === undefined || merged.max === undefined) throw new UsageError('an autoscale policy needs --min and --max');
  const checked = checkAutoscalePolicy(merged);
  if (!checked.ok) {
    const message = checked.error.replace(/^autoscale(\.|: |\s)/, '').replace(/^(min|max|target_rps|target_p99_ms|target_cpu)\b/, (field) => `--${field.replace(/_/g, '-')}`);
    throw new UsageError(message.startsWith('needs a target') ? 'an autoscale policy needs a target: --target-rps, --target-p99-ms or --target-cpu' : message);
  }
  return checked.value;
}

/** GET /apps/:name/autoscale (control/API.md): null where no router or DEA reported. */
interface AutoscaleNow {
  window_s: number;
  running: number;
  desired: number;
  rps: number | null;
  rps_per_instance: number | null;
  p99_ms: number | null;
  cpu: number | null;
  cpu_per_instance: number | null;
}

/** "12.5 req/s per instance, p99 4 ms, CPU 3.1% per instance (last 10 s)", or why there is nothing to show. */
export function describeNow(now: AutoscaleNow): string {
  if (now.rps === null && now.cpu === null) return 'no figures yet from the routers and DEAs';
  const parts: string[] = [];
  if (now.rps !== null) {
    parts.push(now.rps_per_instance === null ? `${fmt(now.rps)} req/s (no instance running)` : `${fmt(now.rps_per_instance)} req/s per instance`);
    parts.push(now.p99_ms === null ? 'p99 -' : `p99 ${fmt(now.p99_ms)} ms`);
  }
  if (now.cpu !== null) parts.push(now.cpu_per_instance === null ? `CPU ${fmt(now.cpu)}%` : `CPU ${fmt(now.cpu_per_instance)}% per instance`);
  return `${parts.join(', ')} (last ${now.window_s} s)`;
}

function fmt(x: number): string {
  return x >= 100 ? String(Math.round(x)) : String(Number(x.toFixed(1)));
}

interface AppEvent {
  time: number;
  type: string;
  actor: string;
  description: string;
}

export async function autoscale(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, AUTOSCALE_USAGE);
  const name = checkAppName(positionals[0]);
  const api = ctx.api();
  const query = groupQuery(values.group);
  const flagged = FLAG_FIELDS.some(([flag]) => values[flag] !== undefined);
  if (values.off && flagged) throw new UsageError('give --off or a policy, not both');
  if (values.off) {
    await updateApp(api, name, query, { autoscale: null });
    ctx.print(`autoscale off for ${name}`);
    return 0;
  }
  let app = await getApp(api, name, query);
  if (flagged) {
    const policy = policyFromFlags(values, app.autoscale)!;
    app = await updateApp(api, name, query, { autoscale: policy });
    ctx.print(`autoscale on for ${name}: ${describePolicy(policy)} (now ${app.instances} instance${app.instances === 1 ? '' : 's'})`);
    return 0;
  }
  const events = ((await api.json<AppEvent[]>('GET', appPath(name, '/events'), { query }).catch(notFoundAs(name))) ?? []).filter((e) => AUTOSCALE_EVENTS.has(e.type));
  const now = (await api.json<AutoscaleNow>('GET', appPath(name, '/autoscale'), { query }).catch(notFoundAs(name)))!;
  const policy = app.autoscale ?? null;
  if (values.json) {
    const { window_s, rps, rps_per_instance, p99_ms, cpu, cpu_per_instance } = now;
    ctx.printJson({
      name: app.name, autoscale: policy, instances: now.desired, runningInstances: now.running,
      now: { window_s, rps, rps_per_instance, p99_ms, cpu, cpu_per_instance }, decisions: events.slice(-LAST_DECISIONS),
    });
    return 0;
  }
  ctx.print(
    formatFields([
      ['autoscale', policy === null ? `off (skiff autoscale ${name} --min N --max M --target-rps R)` : describePolicy(policy)],
      ['instances', `${now.running}/${now.desired}`],
      ['now', describeNow(now)],
    ]),
  );
  const last = events.slice(-LAST_DECISIONS);
  if (last.length > 0) {
    ctx.print('');
    ctx.print(formatTable(['TIME', 'EVENT', 'BY', 'DESCRIPTION'], last.map((e) => [formatTimestamp(e.time), e.type, e.actor, e.description])));
  }
  return 0;
}
