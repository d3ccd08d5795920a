import { SKIFF_VERSION } from '../bus/version';
import { CLIENT_COMMANDS } from './client/registry';

type Command = (argv: string[]) => Promise<number>;

// Roles are loaded only when asked for, so `skiff apps` does not load uWebSockets.js.
const COMMANDS: Record<string, { help: string; load: () => Command }> = {
  router: { help: 'run the HTTP/WebSocket router', load: () => require('../router/main').main },
  controller: { help: 'run the controller (REST API, users, placement)', load: () => require('../control/controller/main').main },
  stager: { help: 'run a stager: turn pushed apps into droplets', load: () => require('../control/stager/main').main },
  dea: { help: 'run a DEA: the agent that runs app instances', load: () => require('../dea/main').main },
  health: { help: 'run the health manager', load: () => loadRole('../control/health/main') },
  'services-node': { help: 'run the data services of this node: redis, postgresql, filesystem', load: () => loadRole('../services/main') },
  up: { help: 'run the whole platform on this machine', load: () => require('./up').main },
  node: { help: 'a node of the cluster: info (its roles), cloud-init (user-data for a new one)', load: () => require('./node').main },
};

/** A role another branch may not have brought in yet: one clear line instead of a require stack. */
function loadRole(module: string): Command {
  try {
    return require(module).main;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && (error as Error).message.includes(module.slice(3))) {
      throw new Error('this role is not part of this build yet');
    }
    throw error;
  }
}

// The user's commands (push, apps, ...), kept apart so that `skiff help` can list them first.
const CLIENT: Record<string, { help: string; load: () => Command }> = Object.fromEntries(
  Object.entries(CLIENT_COMMANDS).map(([name, command]) => [
    name,
    { help: command.help, load: () => (argv: string[]) => require('./client/registry').runClientCommand(name, argv) },
  ]),
);

function usage(): string {
  const lines = ['usage: skiff <command> [flags]', '', 'commands:'];
  const width = Math.max(12, ...[...Object.keys(CLIENT), ...Object.keys(COMMANDS)].map((name) => name.length + 2));
  // `skiff node` is listed with the platform commands, which take its other subcommands.
  for (const [name, { help }] of Object.entries(CLIENT)) if (!(name in COMMANDS)) lines.push(`  ${name.padEnd(width)}${help}`);
  lines.push('', 'platform:');
  for (const [name, { help }] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(width)}${help}`);
  lines.push('', 'Run `skiff <command> --help` for its flags.');
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<void> {
  // `skiff apps | head`: a reader that left is not an error of ours.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage() + '\n');
    process.exitCode = name === undefined ? 2 : 0;
    return;
  }
  if (name === 'version' || name === '--version') {
    process.stdout.write(`skiff ${SKIFF_VERSION}\n`);
    return;
  }
  const command = COMMANDS[name] ?? CLIENT[name];
  if (command === undefined) {
    process.stderr.write(`skiff: unknown command "${name}" (run \`skiff help\`)\n`);
    process.exitCode = 2;
    return;
  }
  try {
    process.exitCode = await command.load()(rest);
  } catch (error) {
    process.stderr.write(`skiff ${name}: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
  // Roles end by returning; nothing they leave open (timers, sockets) may keep the process up.
  if (name !== 'up') setImmediate(() => process.exit());
}
