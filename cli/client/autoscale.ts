// `skiff autoscale APP --min N --max M [--target-rps R] [--target-p99-ms L] [--target-cpu P]`
// sets the app's policy (PUT /apps/:name {"autoscale"}), `--off` removes it,
// and without flags it shows the policy and the autoscaler's last decisions
// (the app's events). `skiff push` takes the same flags (and manifest.yml's
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
  const policy = app.autoscale ?? null;
  if (values.json) {
    ctx.printJson({ name: app.name, autoscale: policy, instances: app.instances, runningInstances: app.runningInstances, decisions: events.slice(-LAST_DECISIONS) });
    return 0;
  }
  ctx.print(
    formatFields([
      ['autoscale', policy === null ? `off (skiff autoscale ${name} --min N --max M --target-rps R)` : describePolicy(policy)],
      ['instances', `${app.runningInstances ?? 0}/${app.instances}`],
    ]),
  );
  const last = events.slice(-LAST_DECISIONS);
  if (last.length > 0) {
    ctx.print('');
    ctx.print(formatTable(['TIME', 'EVENT', 'BY', 'DESCRIPTION'], last.map((e) => [formatTimestamp(e.time), e.type, e.actor, e.description])));
  }
  return 0;
}
