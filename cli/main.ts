import { SKIFF_VERSION } from '../bus/version';

type Command = (argv: string[]) => Promise<number>;

// Roles are loaded only when asked for, so `skiff apps` does not load uWebSockets.js.
const COMMANDS: Record<string, { help: string; load: () => Command }> = {
  router: { help: 'run the HTTP/WebSocket router', load: () => require('../router/main').main },
  controller: { help: 'run the controller (REST API, users, placement)', load: () => require('../control/controller/main').main },
  up: { help: 'run the whole platform on this machine', load: () => require('./up').main },
};

function usage(): string {
  const lines = ['usage: skiff <command> [flags]', '', 'commands:'];
  for (const [name, { help }] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(12)}${help}`);
  lines.push('', 'Run `skiff <command> --help` for its flags.');
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<void> {
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
  const command = COMMANDS[name];
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
