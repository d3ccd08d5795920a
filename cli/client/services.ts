// marketplace, create-service, services, bind-service, unbind-service,
// delete-service (design.md, Data services). Binding is the app's
// `services` list (PUT /apps/:name), as in Cloud Foundry v1.

import { ApiError, type Api, type Query } from './api';
import { getApp, updateApp, waitForStart } from './apps';
import { checkAppName, checkPositionals, checkServiceName, UsageError } from './args';
import { CliError, groupQuery, type Context } from './context';
import { confirm, isInteractive } from './prompt';
import type { CommandArgs } from './registry';
import { formatTable } from './table';
import { isStarted, type ServiceInstance, type ServiceOffering } from './types';

export async function marketplace(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 0, 'skiff marketplace');
  const reply = await ctx.api().json<{ services?: ServiceOffering[] }>('GET', '/info/services');
  const offerings = reply?.services ?? [];
  if (values.json) {
    ctx.printJson(offerings);
    return 0;
  }
  if (offerings.length === 0) {
    ctx.print('no services offered');
    return 0;
  }
  const plans = (o: ServiceOffering) => (o.plans ?? []).map((p) => (p.description ? `${p.name} (${p.description})` : p.name)).join(', ');
  ctx.print(formatTable(['SERVICE', 'PLANS', 'DESCRIPTION'], offerings.map((o) => [o.label, plans(o), o.description])));
  return 0;
}

export async function create(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 2, 'skiff create-service SERVICE NAME [--plan P]');
  const service = positionals[0];
  if (service === undefined || service === '') throw new UsageError('missing SERVICE (skiff marketplace lists them)');
  const name = checkServiceName(positionals[1]);
  const plan = values.plan as string | undefined;
  if (plan !== undefined && !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(plan)) throw new UsageError(`invalid --plan ${JSON.stringify(plan)} (skiff marketplace lists the plans)`);
  ctx.note(`creating ${name} (${service}${plan ? `, ${plan}` : ''})`);
  const created = await ctx.api().json<ServiceInstance>('POST', '/services', { query: groupQuery(values.group), body: { name, service, ...(plan ? { plan } : {}) }, idleTimeoutMs: 120_000 });
  ctx.print(`created ${created.name}: ${created.service}, plan ${created.plan}`);
  return 0;
}

export async function list(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 0, 'skiff services');
  const query: Query = { ...groupQuery(values.group), all: values.all ? 1 : undefined };
  const services = (await ctx.api().json<ServiceInstance[]>('GET', '/services', { query })) ?? [];
  if (values.json) {
    ctx.printJson(services);
    return 0;
  }
  if (services.length === 0) {
    ctx.print('no services yet: skiff marketplace, then skiff create-service SERVICE NAME');
    return 0;
  }
  const header = ['NAME', 'SERVICE', 'PLAN', 'BOUND APPS', 'HEALTH'];
  if (values.all) header.splice(1, 0, 'OWNER');
  const rows = [...services].sort((a, b) => a.name.localeCompare(b.name)).map((s) => {
    const row = [s.name, s.service, s.plan, (s.bound_apps ?? []).join(', '), health(s)];
    if (values.all) row.splice(1, 0, s.owner ?? '');
    return row;
  });
  ctx.print(formatTable(header, rows));
  return 0;
}

/** "healthy", "unhealthy: redis-server is down", or why nobody knows ("node n1 does not answer", "still being created"). */
function health(service: ServiceInstance): string {
  const detail = service.health?.detail ?? '';
  if (service.health?.healthy === true) return detail ? `healthy (${detail})` : 'healthy';
  if (service.health?.healthy === false) return detail ? `unhealthy: ${detail}` : 'unhealthy';
  return detail || (service.state ?? 'unknown');
}

export async function bind(ctx: Context, args: CommandArgs): Promise<number> {
  return changeBinding(ctx, args, 'bind');
}

export async function unbind(ctx: Context, args: CommandArgs): Promise<number> {
  return changeBinding(ctx, args, 'unbind');
}

async function changeBinding(ctx: Context, args: CommandArgs, verb: 'bind' | 'unbind'): Promise<number> {
  const { values, positionals } = args;
  checkPositionals(positionals, 2, `skiff ${verb}-service NAME APP`);
  const name = checkServiceName(positionals[0]);
  if (positionals[1] === undefined) throw new UsageError(`missing APP (usage: skiff ${verb}-service NAME APP)`);
  const appName = checkAppName(positionals[1]);
  const api = ctx.api();
  const query = groupQuery(values.group);
  const app = await getApp(api, appName, query);
  const bound = app.services ?? [];
  if (verb === 'bind') {
    if (bound.includes(name)) {
      ctx.print(`${name} is already bound to ${appName}`);
      return 0;
    }
    await getService(api, name, query);
  } else if (!bound.includes(name)) {
    throw new CliError(`${name} is not bound to ${appName} (its services: ${bound.join(', ') || 'none'})`);
  }
  const services = verb === 'bind' ? [...bound, name] : bound.filter((s) => s !== name);
  const changed = await updateApp(api, appName, query, { services });
  ctx.print(verb === 'bind' ? `bound ${name} to ${appName}` : `unbound ${name} from ${appName}`);
  // A started app restarts, rolling, so that its instances see the change: wait for them, as restart does.
  if (isStarted(changed) && changed.instances > 0 && changed.version !== app.version) {
    ctx.note(`restarting ${appName}, rolling, so that its instances ${verb === 'bind' ? 'see' : 'lose'} ${name}`);
    await waitForStart(ctx, api, appName, query, args, app.version);
    ctx.print(`${appName} is running with ${services.length === 0 ? 'no services' : `services ${services.join(', ')}`}`);
  }
  return 0;
}

export async function remove(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff delete-service NAME [--force]');
  const name = checkServiceName(positionals[0]);
  const api = ctx.api();
  const query = groupQuery(values.group);
  if (!values.force && isInteractive()) {
    const service = await getService(api, name, query); // an unknown name fails before the question
    const bound = service.bound_apps ?? [];
    const question = `delete service ${name} and all its data${bound.length > 0 ? ` (bound to ${bound.join(', ')}; it stays while bound)` : ''}?`;
    if (!(await confirm(question))) {
      ctx.print('not deleted');
      return 1;
    }
  }
  await api.json('DELETE', `/services/${encodeURIComponent(name)}`, { query: { ...query, force: values.force ? 1 : undefined }, idleTimeoutMs: 120_000 }).catch(serviceNotFound(name));
  ctx.print(`deleted ${name}`);
  return 0;
}

export async function getService(api: Api, name: string, query: Query): Promise<ServiceInstance> {
  return api.json<ServiceInstance>('GET', `/services/${encodeURIComponent(name)}`, { query }).catch(serviceNotFound(name));
}

/** 404 on a service path: the one line names the service. */
function serviceNotFound(name: string) {
  return (error: unknown): never => {
    if (error instanceof ApiError && error.status === 404) throw new CliError(`unknown service "${name}" (see \`skiff services\`; skiff create-service makes one)`);
    throw error;
  };
}
