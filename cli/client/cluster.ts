// config, nodes (admin): the cluster as the controller sees it.

import { ApiError } from './api';
import { checkPositionals, UsageError } from './args';
import { CliError, type Context } from './context';
import type { CommandArgs } from './registry';
import { formatTable } from './table';
import { formatAgo, formatUptime } from './time';

const CONFIG_USAGE = 'skiff config list [PREFIX] | get KEY | set KEY VALUE | unset KEY';

interface ConfigEntry {
  key: string;
  value: unknown;
  set: boolean;
  known: boolean;
  default?: unknown;
  description?: string;
  invalid?: string;
}

export async function config(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  const [action, ...rest] = positionals;
  const api = () => ctx.api();
  const path = (key: string) => `/config/${encodeURIComponent(key)}`;
  switch (action) {
    case 'list': {
      checkPositionals(rest, 1, 'skiff config list [PREFIX]');
      const entries = (await api().json<ConfigEntry[]>('GET', '/config', { query: { prefix: rest[0] } }).catch(adminOnly)) ?? [];
      if (values.json) {
        ctx.printJson(entries);
        return 0;
      }
      if (entries.length === 0) {
        ctx.print(`no setting starts with ${JSON.stringify(rest[0] ?? '')}`);
        return 0;
      }
      ctx.print(formatTable(['KEY', 'VALUE', 'FROM', 'NOTE'], entries.map((e) => [e.key, show(e.value), e.set ? 'store' : 'default', e.invalid ? `ignored: ${e.invalid}` : ''])));
      return 0;
    }
    case 'get': {
      const key = oneKey(rest, 'skiff config get KEY');
      const entry = await api().json<ConfigEntry>('GET', path(key)).catch(adminOnly);
      if (values.json) ctx.printJson(entry);
      else ctx.print(show(entry.value));
      return 0;
    }
    case 'set': {
      checkPositionals(rest, 2, 'skiff config set KEY VALUE');
      const [key, text] = rest;
      if (key === undefined || key === '') throw new UsageError(`missing KEY (usage: skiff config set KEY VALUE)`);
      if (text === undefined) throw new UsageError(`missing VALUE (usage: skiff config set KEY VALUE)`);
      const entry = await api().json<ConfigEntry>('PUT', path(key), { body: { value: parseValue(text) } }).catch(adminOnly);
      if (values.json) ctx.printJson(entry);
      else ctx.print(`${key} = ${JSON.stringify(entry.value)}`);
      return 0;
    }
    case 'unset': {
      const key = oneKey(rest, 'skiff config unset KEY');
      await api().json('DELETE', path(key)).catch(adminOnly);
      const entry = await api().json<ConfigEntry>('GET', path(key)).catch(() => undefined);
      ctx.print(entry?.known ? `${key} unset: the default ${JSON.stringify(entry.default)} applies` : `${key} unset`);
      return 0;
    }
    case undefined:
      throw new UsageError(`missing action (usage: ${CONFIG_USAGE})`);
    default:
      throw new UsageError(`unknown action ${JSON.stringify(action)} (usage: ${CONFIG_USAGE})`);
  }
}

/** VALUE as JSON when it is JSON (8192, true, "8192", [1]), else the text itself as a string. */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function oneKey(rest: string[], usage: string): string {
  checkPositionals(rest, 1, usage);
  const key = rest[0];
  if (key === undefined || key === '') throw new UsageError(`missing KEY (usage: ${usage})`);
  return key;
}

function show(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

interface NodeEntry {
  node: string;
  host: string;
  roles: string[];
  uptime: number | null;
  state: string;
  last_seen: number;
}

export async function nodes(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 0, 'skiff nodes');
  const list = (await ctx.api().json<NodeEntry[]>('GET', '/nodes').catch(adminOnly)) ?? [];
  if (values.json) {
    ctx.printJson(list);
    return 0;
  }
  if (list.length === 0) {
    ctx.print('no node has answered yet');
    return 0;
  }
  ctx.print(
    formatTable(
      ['NODE', 'HOST', 'ROLES', 'UPTIME', 'STATE'],
      list.map((n) => [n.node, n.host, n.roles.join(','), n.uptime === null ? undefined : formatUptime(n.uptime), n.state === 'down' ? `down (last seen ${formatAgo(n.last_seen)})` : n.state]),
    ),
  );
  return 0;
}

function adminOnly(error: unknown): never {
  if (error instanceof ApiError && error.status === 403) throw new CliError('only admins can see and change the cluster');
  throw error;
}
