// `skiff health` as a child process for end-to-end tests, ended by pid at teardown.

import { join } from 'node:path';
import { eventually, spawnTracked, terminate, type NatsServer, type TeardownHost } from './harness';

const BIN = join(__dirname, '..', 'bin', 'skiff');



export interface HealthProcess {
  readonly pid: number;
  log(): string;
  /** SIGTERM, SIGKILL after 3 s; resolves with the exit code. Idempotent. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

export async function startHealth(t: TeardownHost, nats: NatsServer, args: string[] = []): Promise<HealthProcess> {
  const child = spawnTracked(process.execPath, [BIN, 'health', '--nats', nats.url, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SKIFF_LOG_LEVEL: 'info' },
  });
  let output = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stopped: Promise<number | null> | undefined;
  const health: HealthProcess = {
    pid: child.pid!,
    log: () => output,
    stop: () => (stopped ??= terminate(child, 3000)),
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  t.teardown(() => health.stop());
  await Promise.race([
    eventually(() => /health manager running/.test(output), 'health manager to run', 15_000),
    exited.then((code) => {
      throw new Error(`skiff health exited with ${code} before running:\n${output}`);
    }),
  ]);
  return health;
}
