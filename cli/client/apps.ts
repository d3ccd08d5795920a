// apps, app, start, stop, restart, delete, scale, env, map, unmap.

import { describePolicy } from '../../bus/autoscale';
import { AppBounds } from '../../bus/platform';
import type { Api, Query } from './api';
import { checkAppName, checkPositionals, checkUri, checkWholeNumber, parseEnvAssignments, UsageError } from './args';
import { appPath, CliError, groupQuery, type Context } from './context';
import { confirm, isInteractive } from './prompt';
import type { CommandArgs } from './registry';
import { formatMemoryMb, parseMemoryMb } from './size';
import { formatFields, formatTable } from './table';
import { formatAgo, formatTimestamp } from './time';
import { isStarted, type App, type Info, type InstanceInfo } from './types';
import { appUrls } from './urls';
import { crashReport, StartFailure, waitForInstances } from './wait';

const DEFAULT_TIMEOUT_S = 180;

export async function list(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 0, 'skiff apps');
  const query: Query = { ...groupQuery(values.group), all: values.all ? 1 : undefined };
  const apps = (await ctx.api().json<App[]>('GET', '/apps', { query })) ?? [];
  if (values.json) {
    ctx.printJson(apps);
    return 0;
  }
  if (apps.length === 0) {
    ctx.print('no apps yet: skiff push');
    return 0;
  }
  const header = values.all ? ['NAME', 'OWNER', 'STATE', 'INSTANCES', 'MEMORY', 'URLS'] : ['NAME', 'STATE', 'INSTANCES', 'MEMORY', 'URLS'];
  const rows = [...apps]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((app) => {
      const row = [app.name, app.state, `${app.runningInstances ?? 0}/${app.instances}`, formatMemoryMb(app.memory), (app.uris ?? []).join(', ')];
      if (values.all) row.splice(1, 0, app.owner ?? '');
      return row;
    });
  ctx.print(formatTable(header, rows));
  return 0;
}

export async function show(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff app N');
  const name = checkAppName(positionals[0]);
  const api = ctx.api();
  const query = groupQuery(values.group);
  const app = await getApp(api, name, query);
  if (values.json) {
    ctx.printJson(app);
    return 0;
  }
  const instances = isStarted(app) ? await listInstances(api, name, query) : [];
  const info = await api.json<Info>('GET', '/info').catch(() => undefined);
  ctx.print(
    formatFields([
      ['name', app.name],
      ['state', app.state],
      ['instances', `${app.runningInstances ?? instances.filter((i) => i.state === 'RUNNING').length}/${app.instances}`],
      ['memory', formatMemoryMb(app.memory)],
      ['urls', appUrls(app.uris ?? [], info?.router_url).join(' ')],
      ['package', app.package_state === 'FAILED' && app.staging_error ? `FAILED: ${app.staging_error}` : app.package_state],
      ['runtime', app.staging?.runtime],
      ['framework', app.staging?.framework],
      ['command', app.command ?? app.staging?.command],
      ['session affinity', app.session_affinity === undefined ? undefined : app.session_affinity ? 'on' : 'off'],
      ['services', app.services === undefined ? undefined : app.services.join(', ') || 'none'],
      ['autoscale', app.autoscale === undefined ? undefined : app.autoscale === null ? 'off' : describePolicy(app.autoscale)],
      ['owner', app.owner],
      ['updated', app.meta?.updated !== undefined ? formatTimestamp(app.meta.updated) : undefined],
    ]),
  );
  if (instances.length > 0) {
    ctx.print('');
    ctx.print(
      formatTable(
        ['INDEX', 'STATE', 'SINCE', 'ADDRESS'],
        instances.map((i) => [i.index, i.state, i.since !== undefined ? formatAgo(i.since) : undefined, i.host !== undefined ? `${i.host}:${i.port}` : undefined]),
      ),
    );
  }
  return 0;
}

export async function start(ctx: Context, args: CommandArgs): Promise<number> {
  checkPositionals(args.positionals, 1, 'skiff start N');
  const name = checkAppName(args.positionals[0]);
  const api = ctx.api();
  const query = groupQuery(args.values.group);
  const app = await getApp(api, name, query);
  if (!isStarted(app)) await updateApp(api, name, query, { state: 'STARTED' });
  ctx.print(`starting ${name}`);
  await waitAndShowUrls(ctx, api, app, query, args, app.version);
  return 0;
}

export async function stop(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff stop N');
  const name = checkAppName(positionals[0]);
  const api = ctx.api();
  await updateApp(api, name, groupQuery(values.group), { state: 'STOPPED' });
  ctx.print(`stopped ${name}`);
  return 0;
}

export async function restart(ctx: Context, args: CommandArgs): Promise<number> {
  checkPositionals(args.positionals, 1, 'skiff restart N');
  const name = checkAppName(args.positionals[0]);
  const api = ctx.api();
  const query = groupQuery(args.values.group);
  let app = await api.json<App>('GET', appPath(name), { query }).catch(notFoundAs(name));
  const before = app.version;
  if (isStarted(app)) {
    // Rolling: new instances start, and each old one stops once its successor runs.
    app = await api.json<App>('POST', appPath(name, '/restart'), { query }).catch(notFoundAs(name));
  } else {
    app = await updateApp(api, name, query, { state: 'STARTED' });
  }
  ctx.print(`restarting ${name}`);
  await waitAndShowUrls(ctx, api, app, query, args, before);
  return 0;
}

/**
 * Waits for the instances of the start that `versionBefore` precedes (the
 * app's version before the command), then prints where the app answers.
 * Shared by start, restart and push.
 */
export async function waitAndShowUrls(ctx: Context, api: Api, app: App, query: Query, args: CommandArgs, versionBefore: string | null | undefined): Promise<void> {
  app = await waitForStart(ctx, api, app.name, query, args, versionBefore);
  const info = await api.json<Info>('GET', '/info').catch(() => undefined);
  const urls = appUrls(app.uris ?? [], info?.router_url);
  ctx.print(urls.length === 0 ? `${app.name} is running (no routes: skiff map ${app.name} HOST)` : `${app.name} is running at ${urls.join(' ')}`);
}

/**
 * Progress lines while the instances come up; when they cannot run, the
 * crashed instance's reason and last log lines, then the failure.
 */
export async function waitForStart(ctx: Context, api: Api, name: string, query: Query, args: CommandArgs, versionBefore: string | null | undefined): Promise<App> {
  const timeoutS = args.values.timeout !== undefined ? checkWholeNumber(args.values.timeout, '--timeout', 1) : DEFAULT_TIMEOUT_S;
  try {
    return await waitForInstances({ api, name, query, versionBefore, timeoutMs: timeoutS * 1000, onProgress: (text) => ctx.note(`  ${text}`) }).catch(notFoundAs(name));
  } catch (error) {
    if (!(error instanceof StartFailure) || error.crashed === undefined) throw error;
    const report = await crashReport(api, name, query, error.crashed);
    for (const log of report.logs) {
      ctx.note(`==> last lines of ${log.path} (instance ${error.crashed.instance ?? error.crashed.index}) <==`);
      for (const line of log.lines) ctx.note(line);
    }
    if (report.logs.length === 0) ctx.note(`(instance ${error.crashed.instance ?? error.crashed.index} wrote nothing to its logs)`);
    throw new StartFailure(`${error.message}: ${report.reason}; more: skiff logs ${name}, skiff crashes ${name}`);
  }
}

export async function remove(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff delete N');
  const name = checkAppName(positionals[0]);
  const api = ctx.api();
  const query = groupQuery(values.group);
  if (!values.force && isInteractive()) {
    await getApp(api, name, query); // an unknown name fails before the question
    if (!(await confirm(`delete app ${name} and its instances?`))) {
      ctx.print('not deleted');
      return 1;
    }
  }
  await api.json('DELETE', appPath(name), { query }).catch(notFoundAs(name));
  ctx.print(`deleted ${name}`);
  return 0;
}

export async function scale(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff scale N --instances K [--memory MB]');
  const name = checkAppName(positionals[0]);
  const change: Partial<App> = {};
  if (values.instances !== undefined) change.instances = checkWholeNumber(values.instances, '--instances', 0, AppBounds.maxInstances);
  if (values.memory !== undefined) change.memory = memoryFlag(values.memory);
  if (Object.keys(change).length === 0) throw new UsageError('nothing to change: give --instances K and/or --memory MB');
  const api = ctx.api();
  const query = groupQuery(values.group);
  const before = await getApp(api, name, query);
  const app = await updateApp(api, name, query, change);
  ctx.print(`${name}: ${app.instances} instance${app.instances === 1 ? '' : 's'} of ${formatMemoryMb(app.memory)}`);
  // A new memory size restarts every instance (a new version); more instances start new ones: wait for them as push does.
  if (isStarted(app) && app.instances > 0) await waitForStart(ctx, api, name, query, { values, positionals }, before.version);
  return 0;
}

export async function env(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  const name = checkAppName(positionals[0]);
  const changes = parseEnvAssignments(positionals.slice(1));
  const api = ctx.api();
  const query = groupQuery(values.group);
  const app = await getApp(api, name, query);
  let current = { ...(app.env ?? {}) };
  if (Object.keys(changes).length > 0) {
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) delete current[key];
      else current[key] = value;
    }
    current = (await updateApp(api, name, query, { env: current })).env ?? current;
    if (!values.json) {
      ctx.note(`updated the environment of ${name}${isStarted(app) ? ' (its instances are replaced, one by one, to pick it up)' : ''}`);
    }
  }
  if (values.json) ctx.printJson(current);
  else if (Object.keys(changes).length === 0) {
    const keys = Object.keys(current).sort();
    if (keys.length === 0) ctx.note(`no variables set for ${name}`);
    for (const key of keys) ctx.print(`${key}=${current[key]}`);
  }
  return 0;
}

export async function map(ctx: Context, args: CommandArgs): Promise<number> {
  return changeRoutes(ctx, args, 'map');
}

export async function unmap(ctx: Context, args: CommandArgs): Promise<number> {
  return changeRoutes(ctx, args, 'unmap');
}

async function changeRoutes(ctx: Context, { values, positionals }: CommandArgs, verb: 'map' | 'unmap'): Promise<number> {
  checkPositionals(positionals, 2, `skiff ${verb} N HOST`);
  const name = checkAppName(positionals[0]);
  if (positionals[1] === undefined) throw new UsageError(`missing HOST (usage: skiff ${verb} N HOST)`);
  const uri = checkUri(positionals[1]);
  const api = ctx.api();
  const query = groupQuery(values.group);
  const app = await getApp(api, name, query);
  const uris = app.uris ?? [];
  if (verb === 'map') {
    if (uris.includes(uri)) {
      ctx.print(`${uri} is already mapped to ${name}`);
      return 0;
    }
    await updateApp(api, name, query, { uris: [...uris, uri] });
    ctx.print(`mapped ${uri} to ${name}`);
  } else {
    if (!uris.includes(uri)) throw new CliError(`${uri} is not mapped to ${name} (its routes: ${uris.join(', ') || 'none'})`);
    await updateApp(api, name, query, { uris: uris.filter((u) => u !== uri) });
    ctx.print(`unmapped ${uri} from ${name}`);
  }
  return 0;
}

export function memoryFlag(value: unknown): number {
  try {
    return parseMemoryMb(String(value));
  } catch (error) {
    throw new UsageError(`--${(error as Error).message}`);
  }
}

export async function getApp(api: Api, name: string, query: Query): Promise<App> {
  return api.json<App>('GET', appPath(name), { query }).catch(notFoundAs(name));
}

export async function updateApp(api: Api, name: string, query: Query, change: Record<string, unknown>): Promise<App> {
  return api.json<App>('PUT', appPath(name), { query, body: change }).catch(notFoundAs(name));
}

export async function listInstances(api: Api, name: string, query: Query): Promise<InstanceInfo[]> {
  const reply = await api.json<{ instances?: InstanceInfo[] }>('GET', appPath(name, '/instances'), { query }).catch(notFoundAs(name));
  return [...(reply?.instances ?? [])].sort((a, b) => a.index - b.index);
}

/** 404 on an app path: the one line names the app, whatever the server's wording. */
export function notFoundAs(name: string) {
  return (error: unknown): never => {
    if (error instanceof Error && error.name === 'ApiError' && (error as { status?: number }).status === 404) {
      throw new CliError(`unknown app "${name}" (see \`skiff apps\`)`);
    }
    throw error;
  };
}
