// The client commands of design.md: their flags, usage and handlers, and the
// one place that turns failures into a single line and an exit code
// (2 for bad usage, 1 for everything else).

import type { FlagSpec, FlagValue } from '../../bus/flags';
import { helpText } from '../../bus/flags';
import { ApiError, oneLine, UnreachableError } from './api';
import { parseCommandFlags, UsageError } from './args';
import { CliError, Context } from './context';

export interface CommandArgs {
  values: Record<string, FlagValue | undefined>;
  positionals: string[];
}

export interface ClientCommand {
  usage: string;
  help: string;
  flags: readonly FlagSpec[];
  /** Loaded on use, so a command pulls in only its own modules. */
  handler: () => (ctx: Context, args: CommandArgs) => Promise<number>;
}

const json: FlagSpec = { name: 'json', kind: 'boolean', help: "print the API's JSON" };
const group: FlagSpec = { name: 'group', kind: 'string', help: "(admin) act on this user's app" };
const instance: FlagSpec = { name: 'instance', kind: 'string', help: 'instance index (or instance id)', defaultText: 'newest running, else newest crashed' };
const force: FlagSpec = { name: 'force', kind: 'boolean', help: 'do not ask for confirmation' };
const timeout: FlagSpec = { name: 'timeout', kind: 'number', min: 1, max: 86400, help: 'seconds to wait for the instances to run', defaultText: '180' };
const nodeFlag: FlagSpec = { name: 'node', kind: 'string', help: 'the node', defaultText: "this host's (its data dir's node.json)" };
const dataDir: FlagSpec = { name: 'data-dir', kind: 'string', help: "this host's node's data dir, to find its name", defaultText: '~/.skiff/data, /var/lib/skiff as root' };
const memory: FlagSpec = { name: 'memory', kind: 'string', help: 'memory per instance, e.g. 256M or 1G (unitless: MB)' };

/** The policy flags of `skiff autoscale`, which `skiff push` takes too (cli/client/autoscale.ts reads them). */
const policyFlags: readonly FlagSpec[] = [
  { name: 'min', kind: 'number', help: 'autoscale: fewest instances' },
  { name: 'max', kind: 'number', help: 'autoscale: most instances' },
  { name: 'target-rps', kind: 'number', help: 'autoscale: requests per second per instance, as the routers count them' },
  { name: 'target-p99-ms', kind: 'number', help: 'autoscale: p99 latency through the routers, in ms' },
  { name: 'target-cpu', kind: 'number', help: 'autoscale: CPU per instance, percent of one core' },
];

/* eslint-disable @typescript-eslint/no-require-imports */
const apps = () => require('./apps') as typeof import('./apps');
const session = () => require('./session') as typeof import('./session');
const instances = () => require('./instances') as typeof import('./instances');
const users = () => require('./users') as typeof import('./users');
const nodes = () => require('./nodes') as typeof import('./nodes');
const cluster = () => require('./cluster') as typeof import('./cluster');
const services = () => require('./services') as typeof import('./services');
const serviceGroup: FlagSpec = { name: 'group', kind: 'string', help: "(admin) act on this user's service and app" };

export const CLIENT_COMMANDS: Record<string, ClientCommand> = {
  target: { usage: 'skiff target [URL]', help: 'set (or show) the API to talk to; checks its /info', flags: [], handler: () => session().target },
  login: {
    usage: 'skiff login [--email E] [--password P]',
    help: 'log in (asks on a terminal)',
    flags: [{ name: 'email', kind: 'string', help: 'your email' }, { name: 'password', kind: 'string', secret: true, env: 'SKIFF_PASSWORD', help: 'your password (asked on a terminal; SKIFF_PASSWORD keeps it off the command line)' }],
    handler: () => session().login,
  },
  logout: { usage: 'skiff logout', help: 'forget the token', flags: [], handler: () => session().logout },
  push: {
    usage: 'skiff push [DIR] [--name N] [--instances K] [--memory MB] [--session-affinity | --no-session-affinity] [--no-start] [--min N --max M --target-rps R ...]',
    help: 'upload an app (reads manifest.yml), stage it and run it',
    flags: [
      { name: 'name', kind: 'string', help: 'app name (or picks the entry of manifest.yml applications:)', defaultText: 'manifest name, else the directory name' },
      { name: 'instances', kind: 'number', help: 'number of instances', defaultText: 'manifest, else 1' },
      memory,
      { name: 'session-affinity', kind: 'boolean', help: "the router pins each client to one instance (its __VCAP_ID__ cookie), e.g. for socket.io's long-polling", defaultText: 'manifest session_affinity, else unchanged (off for a new app)' },
      { name: 'no-session-affinity', kind: 'boolean', help: 'turn session affinity off' },
      { name: 'no-start', kind: 'boolean', help: 'upload and stage, but do not start' },
      ...policyFlags,
      timeout,
      group,
    ],
    handler: () => (require('./push') as typeof import('./push')).push,
  },
  apps: {
    usage: 'skiff apps [--json] [--all]',
    help: 'list your apps',
    flags: [json, group, { name: 'all', kind: 'boolean', help: "(admin) every user's apps" }],
    handler: () => apps().list,
  },
  app: { usage: 'skiff app N [--json]', help: 'show one app and its instances', flags: [json, group], handler: () => apps().show },
  start: { usage: 'skiff start N', help: 'start an app and wait for it to run', flags: [group, timeout], handler: () => apps().start },
  stop: { usage: 'skiff stop N', help: 'stop an app', flags: [group], handler: () => apps().stop },
  restart: { usage: 'skiff restart N', help: 'restart an app, rolling: new instances run before old ones stop', flags: [group, timeout], handler: () => apps().restart },
  delete: { usage: 'skiff delete N [--force]', help: 'delete an app (asks on a terminal)', flags: [group, force], handler: () => apps().remove },
  scale: {
    usage: 'skiff scale N --instances K [--memory MB]',
    help: 'change the number of instances or their memory, and wait until they run',
    flags: [{ name: 'instances', kind: 'number', help: 'number of instances' }, memory, group, timeout],
    handler: () => apps().scale,
  },
  env: { usage: 'skiff env N [K=V ...]', help: 'show the environment, or set (K=V) and unset (K=) variables', flags: [json, group], handler: () => apps().env },
  map: { usage: 'skiff map N HOST', help: 'add a route, e.g. shop.localhost', flags: [group], handler: () => apps().map },
  unmap: { usage: 'skiff unmap N HOST', help: 'remove a route', flags: [group], handler: () => apps().unmap },
  stats: { usage: 'skiff stats N [--json]', help: 'CPU, memory, disk and uptime per instance', flags: [json, group], handler: () => instances().stats },
  crashes: { usage: 'skiff crashes N [--json]', help: 'instances that crashed', flags: [json, group], handler: () => instances().crashes },
  files: { usage: 'skiff files N [PATH] [--instance I]', help: "list or print an instance's files", flags: [instance, json, group], handler: () => instances().files },
  logs: {
    usage: 'skiff logs N [--instance I] [--follow]',
    help: "print an instance's stdout and stderr logs",
    flags: [
      instance,
      { name: 'follow', kind: 'boolean', help: 'keep printing new lines until Ctrl-C' },
      { name: 'tail', kind: 'number', min: 0, help: 'bytes of each log to print first', defaultText: '65536' },
      group,
    ],
    handler: () => instances().logs,
  },
  passwd: {
    usage: 'skiff passwd [EMAIL] [--old P --new P]',
    help: "change your password (asks on a terminal); (admin) set another user's with EMAIL --new P",
    flags: [
      { name: 'old', kind: 'string', secret: true, env: 'SKIFF_OLD_PASSWORD', help: 'your current password (asked on a terminal)' },
      { name: 'new', kind: 'string', secret: true, env: 'SKIFF_NEW_PASSWORD', help: 'the new password (asked twice on a terminal)' },
    ],
    handler: () => session().passwd,
  },
  users: { usage: 'skiff users [--json]', help: '(admin) list users', flags: [json], handler: () => users().list },
  'add-user': {
    usage: 'skiff add-user EMAIL --password P [--admin]',
    help: '(admin) create a user',
    flags: [{ name: 'password', kind: 'string', secret: true, env: 'SKIFF_PASSWORD', help: 'their password (asked on a terminal)' }, { name: 'admin', kind: 'boolean', help: 'make them an admin' }],
    handler: () => users().add,
  },
  'delete-user': { usage: 'skiff delete-user EMAIL [--force]', help: '(admin) delete a user and their apps', flags: [force], handler: () => users().remove },
  role: {
    usage: 'skiff role add|remove ROLE [--node NODE]',
    help: '(admin) start or stop a role on a node, remembered across its restarts',
    flags: [nodeFlag, dataDir, json],
    handler: () => nodes().role,
  },
  node: { usage: 'skiff node info [--node NODE]', help: '(admin) the roles of a node: assigned, running, available', flags: [nodeFlag, dataDir, json], handler: () => nodes().node },
  nodes: { usage: 'skiff nodes [--json]', help: '(admin) every node of the cluster: its roles, uptime and state', flags: [json], handler: () => cluster().nodes },
  config: {
    usage: 'skiff config list [PREFIX] | get KEY | set KEY VALUE | unset KEY',
    help: '(admin) show or change cluster settings (the config store); VALUE is JSON when it parses as JSON, else a string',
    flags: [json],
    handler: () => cluster().config,
  },
  marketplace: { usage: 'skiff marketplace [--json]', help: 'the data services offered, with their plans', flags: [json], handler: () => services().marketplace },
  'create-service': {
    usage: 'skiff create-service SERVICE NAME [--plan P]',
    help: 'create a service instance (redis, postgresql, filesystem) named NAME',
    flags: [{ name: 'plan', kind: 'string', help: 'the plan (skiff marketplace lists them)', defaultText: 'free' }, serviceGroup],
    handler: () => services().create,
  },
  services: {
    usage: 'skiff services [--json] [--all]',
    help: 'your service instances: NAME SERVICE PLAN BOUND APPS HEALTH',
    flags: [json, serviceGroup, { name: 'all', kind: 'boolean', help: "(admin) every user's services" }],
    handler: () => services().list,
  },
  'bind-service': {
    usage: 'skiff bind-service NAME APP',
    help: 'bind a service instance to an app (a started app restarts, rolling, to see it)',
    flags: [serviceGroup, timeout],
    handler: () => services().bind,
  },
  'unbind-service': {
    usage: 'skiff unbind-service NAME APP',
    help: "unbind a service instance from an app (its credentials stop working; a started app restarts, rolling)",
    flags: [serviceGroup, timeout],
    handler: () => services().unbind,
  },
  'delete-service': {
    usage: 'skiff delete-service NAME [--force]',
    help: 'delete a service instance and its data (asks on a terminal); --force also unbinds it from its apps',
    flags: [serviceGroup, { name: 'force', kind: 'boolean', help: 'do not ask, and unbind it from the apps it is bound to first' }],
    handler: () => services().remove,
  },
  bench: {
    usage: 'skiff bench APP [--connections C] [--duration S] [--path P] [--json] [--html FILE] [--compare-direct]',
    help: 'a load run through the router against your app (autocannon): req/s, latency p50/p90/p99/max, throughput, errors and non-2xx',
    flags: [
      { name: 'connections', kind: 'number', min: 1, help: 'concurrent connections', defaultText: '10 (at most the config store bench.max_connections)' },
      { name: 'duration', kind: 'number', min: 1, help: 'seconds of load', defaultText: '10 (at most the config store bench.max_duration)' },
      { name: 'path', kind: 'string', help: 'the path to request', defaultText: '/' },
      json,
      { name: 'html', kind: 'string', help: 'also write a self-contained HTML report (latency histogram, req/s over time) to FILE' },
      { name: 'compare-direct', kind: 'boolean', help: "then run the same load straight at one instance, to see the router's overhead" },
      group,
    ],
    handler: () => (require('./bench') as typeof import('./bench')).bench,
  },
  autoscale: {
    usage: 'skiff autoscale APP --min N --max M [--target-rps R] [--target-p99-ms L] [--target-cpu P] | --off',
    help: "scale the app with its traffic, between --min and --max instances, on the routers' request rate and p99 and the DEAs' CPU; without flags: the policy and its last decisions",
    flags: [...policyFlags, { name: 'off', kind: 'boolean', help: 'turn autoscaling off (the app keeps its instances)' }, json, group],
    handler: () => (require('./autoscale') as typeof import('./autoscale')).autoscale,
  },
  events: { usage: 'skiff events N [--json]', help: "an app's history: pushed, staged, scaled, crashed, restarted by the health manager", flags: [json, group], handler: () => instances().events },
  ssh: {
    usage: 'skiff ssh N [--instance I] [--] [COMMAND ...]',
    help: "run a command (or a shell) in an instance's directory and environment",
    flags: [
      instance,
      { name: 'tty', kind: 'boolean', help: 'ask for a terminal even when not on one', defaultText: 'when stdin and stdout are terminals' },
      { name: 'no-tty', kind: 'boolean', help: 'never ask for a terminal' },
      group,
    ],
    handler: () => (require('./ssh') as typeof import('./ssh')).ssh,
  },
};

export function commandHelp(name: string, command: ClientCommand): string {
  const flags = helpText(command.usage, command.flags, 'SKIFF').split('\n').slice(2);
  // helpText names environment variables; client commands read only the secrets' own (args.ts).
  const read = new Set(command.flags.filter((spec) => spec.secret === true && spec.env !== undefined).map((spec) => spec.env!));
  const lines = flags.map((line) => line.replace(/ \[\$(SKIFF_[A-Z0-9_]+)\]$/, (whole, name: string) => (read.has(name) ? whole : '')));
  return [`usage: ${command.usage}`, '', command.help, ...(lines.length ? ['', 'flags:', ...lines] : [])].join('\n') + `\n`;
}

/** Runs one client command; never throws. */
export async function runClientCommand(name: string, argv: string[]): Promise<number> {
  const command = CLIENT_COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(`skiff: unknown command "${name}" (run \`skiff help\`)\n`);
    return 2;
  }
  try {
    const parsed = parseCommandFlags(argv, command.flags);
    if (parsed.values.help) {
      process.stdout.write(commandHelp(name, command));
      return 0;
    }
    const ctx = new Context();
    return await command.handler()(ctx, { values: parsed.values, positionals: parsed.positionals });
  } catch (error) {
    const { message, code } = describeFailure(error);
    process.stderr.write(`skiff ${name}: ${message}\n`);
    return code;
  }
}

export function describeFailure(error: unknown): { message: string; code: number } {
  if (error instanceof UsageError) return { message: error.message, code: 2 };
  if (error instanceof ApiError) {
    if (error.status === 401) return { message: 'not logged in, or the login expired: run `skiff login`', code: 1 };
    return { message: error.message, code: 1 };
  }
  if (error instanceof UnreachableError || error instanceof CliError) return { message: error.message, code: 1 };
  return { message: oneLine(error instanceof Error ? error.message : String(error)), code: 1 };
}
