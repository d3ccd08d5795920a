// The Skiff router contender: a private nats-server, the router from
// dist/cli/main.js as a child process, and the bench route registered over
// NATS exactly as a DEA would (and refreshed, since routes go stale).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect, NatsConnection, StringCodec } from 'nats';
import { BENCH_HOST, request } from './cases';
import type { Contender } from './contender';
import { childPids, freePort, Managed, sleep, startProcess, stopProcess, waitForPort, which } from './procs';

const REPO = path.resolve(__dirname, '..', '..');
/** The compiled CLI; its absence means the router is not built. */
export const CLI_MAIN = path.join(REPO, 'dist', 'cli', 'main.js');
// The router is started the way users start it, `skiff router ...`, through
// bin/skiff: dist/cli/main.js only exports run() and does nothing when run
// directly. SKIFF_BENCH_ROUTER_MAIN points at another launcher (e.g. a stub,
// or another checkout's bin/skiff) taking the same arguments.
export const ROUTER_LAUNCHER = process.env.SKIFF_BENCH_ROUTER_MAIN || path.join(REPO, 'bin', 'skiff');
const REREGISTER_MS = 10000;

export class RouterNotBuilt extends Error {
  constructor() {
    super('router not built: run npm run build');
  }
}

/** The process and every descendant (a router may use worker processes). */
function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length && out.length < 256; i++) {
    const id = out[i];
    if (id !== undefined) out.push(...childPids(id));
  }
  return out;
}

export interface SkiffInfo {
  natsPort: number;
  statusPort: number;
}

/**
 * More `skiff router` flags, after the harness's own (ws-idle: --max-conns-per-backend);
 * extra backend ports are registered as further endpoints of the route.
 */
export async function startSkiff(
  backendPort: number,
  extraArgs: string[] = [],
  extraBackendPorts: number[] = [],
): Promise<Contender & { info: SkiffInfo }> {
  if (!process.env.SKIFF_BENCH_ROUTER_MAIN && !fs.existsSync(CLI_MAIN)) throw new RouterNotBuilt();
  if (!fs.existsSync(ROUTER_LAUNCHER)) throw new Error(`router launcher ${ROUTER_LAUNCHER} is missing`);
  const natsBin = which('nats-server');
  if (!natsBin) throw new Error('nats-server not installed: the skiff contender needs it');

  const started: Managed[] = [];
  let nc: NatsConnection | undefined;
  let timer: NodeJS.Timeout | undefined;
  const stop = async (): Promise<void> => {
    if (timer) clearInterval(timer);
    timer = undefined;
    if (nc) {
      const c = nc;
      nc = undefined;
      await Promise.race([c.close().catch(() => {}), sleep(2000)]);
    }
    // Router first, then NATS.
    for (const m of [...started].reverse()) await stopProcess(m);
  };

  try {
    const natsPort = await freePort();
    const nats = startProcess({ name: 'nats-server', cmd: natsBin, args: ['-a', '127.0.0.1', '-p', String(natsPort)] });
    started.push(nats);
    await waitForPort(nats, natsPort);

    const port = await freePort();
    const statusPort = await freePort();
    const router = startProcess({
      name: 'skiff router',
      cmd: process.execPath,
      args: [
        ROUTER_LAUNCHER,
        'router',
        '--port', String(port),
        '--status-port', String(statusPort),
        '--nats', `nats://127.0.0.1:${natsPort}`,
        '--start-delay', '0',
        '--status-user', 'bench',
        '--status-password', 'bench',
        ...extraArgs,
      ],
    });
    started.push(router);
    await waitForPort(router, port, 20000).catch((err: Error) => {
      throw router.exited && router.tail.length === 0
        ? new Error(`${ROUTER_LAUNCHER} router exited (${router.exitInfo}) without output or listening on ${port}`)
        : err;
    });

    nc = await connect({ servers: `127.0.0.1:${natsPort}`, name: 'skiff-bench', maxReconnectAttempts: 5 });
    const sc = StringCodec();
    const registrations = [backendPort, ...extraBackendPorts].map((p) =>
      sc.encode(JSON.stringify({ host: '127.0.0.1', port: p, uris: [BENCH_HOST] })),
    );
    const register = (): void => {
      if (nc && !nc.isClosed()) for (const registration of registrations) nc.publish('router.register', registration);
    };
    // Re-register when a router (re)starts, as route owners must.
    const sub = nc.subscribe('router.start');
    void (async () => {
      for await (const _ of sub) register();
    })().catch(() => {});
    register();
    await nc.flush();
    // Routes expire after stale_threshold_in_seconds (120 by default); a full run lasts longer.
    timer = setInterval(register, REREGISTER_MS);
    timer.unref();

    const deadline = Date.now() + 20000;
    let last = '';
    for (;;) {
      if (router.exited) throw new Error(`router exited (${router.exitInfo}): ${router.tail.slice(-5).join(' | ')}`);
      try {
        const r = await request(port, 'GET', '/small', undefined, 2000);
        if (r.status === 200) break;
        last = `status ${r.status}`;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`router never routed ${BENCH_HOST} (last: ${last})`);
      register();
      await sleep(200);
    }

    return {
      name: 'skiff',
      port,
      main: router,
      proxyPids: () => (router.exited ? [] : processTree(router.pid)),
      stop,
      info: { natsPort, statusPort },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
