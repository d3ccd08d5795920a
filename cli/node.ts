// `skiff node <subcommand>`: commands about this machine as a node of a cluster.

import { helpText, UsageError } from '../bus/flags';
import { checkoutRemote, CLOUD_INIT_FLAGS, cloudConfig, parseCloudInitOptions } from './cloud-init';

type Subcommand = { help: string; run: (argv: string[]) => Promise<number> };

const SUBCOMMANDS: Record<string, Subcommand> = {
  info: {
    help: '(admin) the roles of a node: assigned, running, available (--node NODE, else this host\'s)',
    // A client command (it asks the controller): its flags, errors and exit codes are the client's.
    run: (argv) => (require('./client/registry') as typeof import('./client/registry')).runClientCommand('node', ['info', ...argv]),
  },
  'cloud-init': {
    help: 'print #cloud-config user-data that makes a fresh Debian 12 machine join the cluster',
    run: async (argv) => {
      const options = parseCloudInitOptions(argv, process.env, checkoutRemote);
      if (options.help) {
        process.stdout.write(helpText('skiff node cloud-init --join TOKEN --roles dea[,router...]', CLOUD_INIT_FLAGS, 'SKIFF_NODE') + '\n');
        return 0;
      }
      process.stdout.write(cloudConfig(options));
      return 0;
    },
  },
};

function usage(): string {
  return ['usage: skiff node <subcommand> [flags]', '', ...Object.entries(SUBCOMMANDS).map(([name, { help }]) => `  ${name.padEnd(12)}${help}`)].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name === undefined ? 2 : 0;
  }
  const subcommand = SUBCOMMANDS[name];
  if (subcommand === undefined) {
    process.stderr.write(`skiff node: unknown subcommand ${JSON.stringify(name)} (subcommands: ${Object.keys(SUBCOMMANDS).join(', ')})\n`);
    return 2;
  }
  try {
    return await subcommand.run(rest);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`skiff node ${name}: ${error.message}\n`);
    return 2;
  }
}
