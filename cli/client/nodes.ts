// `skiff role add|remove ROLE [--node NODE]` and `skiff node info [--node
// NODE]` (admin): asked of the node's supervisor through the controller.
// Without --node they mean this host's node, named in the data dir's
// node.json (as `skiff up` wrote it).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NODE_NAME, NODE_ROLES, type NodeInfo } from '../../bus/platform';
import { ApiError } from './api';
import { checkPositionals, UsageError } from './args';
import { CliError, type Context } from './context';
import type { CommandArgs } from './registry';

function defaultDataDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/skiff' : join(process.env.HOME ?? '', '.skiff', 'data');
}

/** The node a command is about: --node, else this host's (from its node.json). */
function nodeName(values: CommandArgs['values']): string {
  const given = values.node as string | undefined;
  if (given !== undefined) {
    if (!NODE_NAME.test(given)) throw new UsageError(`--node must be letters, digits and '-', got ${JSON.stringify(given)}`);
    return given;
  }
  const dataDir = (values['data-dir'] as string | undefined) ?? defaultDataDir();
  try {
    const name = (JSON.parse(readFileSync(join(dataDir, 'node.json'), 'utf8')) as { name?: unknown }).name;
    if (typeof name === 'string' && NODE_NAME.test(name)) return name;
  } catch {
    // below
  }
  throw new UsageError(`no node runs with the data dir ${dataDir} here: give --node NAME (skiff nodes lists them) or --data-dir`);
}

function adminOnly(error: unknown): never {
  if (error instanceof ApiError && error.status === 403) throw new CliError('only admins can manage nodes');
  throw error;
}

function describe(info: NodeInfo): string[] {
  const stopped = info.assigned.filter((role) => !info.running.includes(role));
  return [
    `node:       ${info.node}`,
    `host:       ${info.host}`,
    `roles:      ${info.assigned.length > 0 ? info.assigned.join(', ') : '(none)'}${stopped.length > 0 ? ` (not running: ${stopped.join(', ')})` : ''}`,
    `nats:       ${info.nats_server ? 'serves NATS for the cluster' : 'a client of the cluster\'s NATS'}`,
    `available:  ${info.available.join(', ')}`,
    ...(info.metrics === undefined ? [] : [`metrics:    ${info.assigned.filter((role) => info.metrics![role] !== undefined).map((role) => `${role} ${info.metrics![role]}`).join(', ') || '(none)'}`]),
  ];
}

export async function role(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 2, 'skiff role add|remove ROLE [--node NODE]');
  if (positionals.length < 2) throw new UsageError('usage: skiff role add|remove ROLE [--node NODE]');
  const [op, name] = positionals as [string, string];
  if (op !== 'add' && op !== 'remove') throw new UsageError(`skiff role ${JSON.stringify(op)}: expected add or remove`);
  if (!(NODE_ROLES as readonly string[]).includes(name)) throw new UsageError(`unknown role "${name}" (roles: ${NODE_ROLES.join(', ')})`);
  const node = nodeName(values);
  const path = `/nodes/${encodeURIComponent(node)}/roles/${encodeURIComponent(name)}`;
  const info = await ctx.api().json<NodeInfo>(op === 'add' ? 'PUT' : 'DELETE', path, { idleTimeoutMs: 60_000 }).catch(adminOnly);
  if (values.json) {
    ctx.printJson(info);
    return 0;
  }
  ctx.print(`${op === 'add' ? 'added' : 'removed'} ${name} ${op === 'add' ? 'to' : 'from'} ${node}`);
  for (const line of describe(info)) ctx.print(line);
  return 0;
}

export async function node(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff node info [--node NODE]');
  if (positionals.length === 0) throw new UsageError('usage: skiff node info [--node NODE]');
  if (positionals[0] !== 'info') throw new UsageError(`skiff node ${JSON.stringify(positionals[0])}: expected info`);
  const info = await ctx.api().json<NodeInfo>('GET', `/nodes/${encodeURIComponent(nodeName(values))}`).catch(adminOnly);
  if (values.json) ctx.printJson(info);
  else for (const line of describe(info)) ctx.print(line);
  return 0;
}
