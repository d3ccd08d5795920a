// A platform for the data services' end-to-end tests: `skiff up` with its
// services node, the CLI against it, the apps' environments read over
// `skiff ssh`, and the places a credential must never reach.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import { finish, spawnSkiff, tempHome } from './cli_harness';
import { eventually, type TeardownHost } from './harness';
import { descendants, platformDataDir, platformPorts, startSkiffTree, upArgs, type SkiffTree } from './platform_harness';

export const ROOT = join(__dirname, '..');
export const hasRedis = ['/usr/bin/redis-server', '/usr/sbin/redis-server'].some(existsSync);
export const hasPostgres = existsSync('/usr/lib/postgresql');

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request through the router to app host `host`. */
export function request(port: number, host: string, path = '/', init: { method?: string; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers: { host }, agent: false, timeout: 15_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${host}${path} within 15 s`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

export function redisServers(pid: number): number[] {
  return descendants(pid).filter((child) => {
    try {
      return readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'redis-server';
    } catch {
      return false;
    }
  });
}

export interface ServicesPlatform {
  dataDir: string;
  home: string;
  router: number;
  platform: SkiffTree;
  /** `skiff ...args`; throws with the last lines of its stderr unless it exits 0 (pushes and restarts may take minutes on a busy machine). */
  run(args: string[], limitMs?: number): Promise<string>;
  /** The environment an app's newest running instance sees. */
  envOf(app: string): Promise<Record<string, string>>;
  /** `skiff services`: each service's row by name. */
  services(): Promise<Record<string, string>>;
  /** Where a credential must never appear: the platform's log (every role's), the backends' logs, and `skiff events` of these apps. */
  exposed(apps: string[]): Promise<string[]>;
}

export async function startServicesPlatform(t: TeardownHost, prefix: string): Promise<ServicesPlatform> {
  const dataDir = platformDataDir(t, prefix);
  const home = tempHome(t);
  const ports = await platformPorts();
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 400_000);
  await eventually(() => platform.out().includes('router: ') && platform.err().includes('services node ready'), 'the platform and its services node to be up', 90_000);
  const run = async (args: string[], limitMs = 60_000): Promise<string> => {
    const result = await finish(spawnSkiff(args, home), limitMs);
    if (result.code !== 0) throw new Error(`skiff ${args.join(' ')} exited ${result.code}: ${result.stderr.trim().split('\n').slice(-4).join(' | ')}`);
    return result.stdout;
  };
  return {
    dataDir,
    home,
    router: ports.router,
    platform,
    run,
    async envOf(app) {
      const out = await run(['ssh', app, '--', 'printenv']);
      return Object.fromEntries(out.split('\n').filter((line) => line.includes('=')).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    },
    async services() {
      const out = await run(['services']);
      return Object.fromEntries(out.split('\n').slice(1).filter(Boolean).map((line) => [line.split(/\s+/)[0]!, line]));
    },
    async exposed(apps) {
      const logs = join(dataDir, 'services', 'logs');
      const places = [platform.out(), platform.err()];
      if (existsSync(logs)) for (const name of readdirSync(logs)) places.push(readFileSync(join(logs, name), 'utf8'));
      for (const app of apps) places.push(await run(['events', app]), await run(['events', app, '--json']));
      return places;
    },
  };
}
