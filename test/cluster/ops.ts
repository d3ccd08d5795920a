// What the cluster test asks of NATS itself, as the operator user of a node
// (<data-dir>/nats/operator.json), run (compiled, from dist/) inside that
// node's namespace. One command per run; JSON on stdout; exit 1 with the
// error on stderr.
//
//   node ops.js CREDENTIALS streams   every stream: replicas wanted, leader, and each replica's state

import { readFileSync } from 'node:fs';
import { connect, type NatsConnection } from 'nats';

const TIMEOUT_MS = 5000;

export interface StreamState {
  name: string;
  replicas: number;
  leader: string | null;
  /** The leader and every other replica: whether it is current (caught up) and online. */
  members: Array<{ name: string; current: boolean; offline: boolean }>;
}

async function streams(nc: NatsConnection): Promise<StreamState[]> {
  const jsm = await nc.jetstreamManager({ timeout: TIMEOUT_MS });
  const out: StreamState[] = [];
  for await (const info of jsm.streams.list()) {
    const cluster = info.cluster;
    const members = [
      ...(cluster?.leader ? [{ name: cluster.leader, current: true, offline: false }] : []),
      ...(cluster?.replicas ?? []).map((r) => ({ name: r.name, current: r.current, offline: r.offline === true })),
    ];
    out.push({ name: info.config.name, replicas: info.config.num_replicas ?? 1, leader: cluster?.leader ?? null, members });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

async function main(): Promise<void> {
  const [file, command] = process.argv.slice(2);
  const credentials = JSON.parse(readFileSync(file!, 'utf8')) as { servers: string[]; user: string; pass: string };
  const nc = await connect({ servers: credentials.servers, user: credentials.user, pass: credentials.pass, timeout: TIMEOUT_MS, name: 'cluster-test-ops' });
  try {
    if (command === 'streams') {
      process.stdout.write(JSON.stringify(await streams(nc)) + '\n');
    } else {
      throw new Error(`unknown command ${JSON.stringify(command)}`);
    }
  } finally {
    await nc.close();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  },
);
