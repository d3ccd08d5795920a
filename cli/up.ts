import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, fchmodSync, mkdirSync, openSync, statSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { helpText, parseFlags, UsageError, type FlagSpec } from '../bus/flags';
import { NATS_FLAGS, natsTarget } from '../bus/nats-options';
import type { NatsRole } from '../bus/permissions';
import { DEFAULT_APP_UIDS, formatRange, parseUidRange } from '../bus/uids';
import { createLogger, type Logger } from '../bus/log';
import { Api } from './client/api';
import { readConfig, skiffHome, writeConfig } from './client/config';
import { loadOrCreateAdmin, loadOrCreateStatusCredentials } from './up-admin';
import { preparePlatformNats } from './up-nats';

const FLAGS: readonly FlagSpec[] = [
  { name: 'data-dir', kind: 'string', help: 'where the platform keeps its state', defaultText: '~/.skiff/data, /var/lib/skiff as root' },
  { name: 'router-port', kind: 'number', min: 1, max: 65535, help: 'router port for app traffic', defaultText: '8080' },
  { name: 'router-status-port', kind: 'number', min: 1, max: 65535, help: 'router status port', defaultText: '8081' },
  { name: 'api-port', kind: 'number', min: 1, max: 65535, help: 'controller API port', defaultText: '9022' },
  { name: 'nats-port', kind: 'number', min: 1, max: 65535, help: 'port of the nats-server started here', defaultText: '4222' },
  { name: 'nats', kind: 'string', env: 'NATS_URL', help: 'use this NATS server instead of starting one (its credentials: --nats-credentials, or NATS_USER and NATS_PASSWORD)' },
  { ...NATS_FLAGS.find((flag) => flag.name === 'nats-credentials')!, help: 'with --nats: the roles\' NATS credentials file, {"user","pass"} or {"token"}, mode 0600' },
  { name: 'domain', kind: 'string', help: 'apps answer at <name>.<domain>', defaultText: 'localhost' },
  { name: 'app-ports', kind: 'string', help: 'port range of app instances (the DEA\'s --port-range); give each platform on one machine its own', defaultText: '61000-61999' },
  { name: 'app-uids', kind: 'string', help: 'uids of apps (the controller\'s and the DEA\'s --app-uids); give each platform on one machine its own', defaultText: formatRange(DEFAULT_APP_UIDS) },
];

const BIN = join(__dirname, '..', '..', 'bin', 'skiff');

/** A child process kept running: restarted with backoff when it dies, until the platform stops. */
class Supervised {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restarts = 0;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly log: Logger,
    /** Where its output goes; the terminal by default. */
    private readonly logFile?: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  start(): void {
    this.startedAt = Date.now();
    const out = this.logFile === undefined ? 'inherit' : openPrivateLog(this.logFile);
    const [command, ...args] = [...parentDeathPrefix(), this.command, ...this.args];
    // Its own process group: Ctrl-C reaches only `skiff up`, which then stops
    // the roles in order; the parent-death signal ends them if `up` is killed.
    const child = spawn(command!, args, { stdio: ['ignore', out, out], env: this.env, detached: true });
    // The child has its own copy of the log's descriptor; ours would leak one per restart.
    if (typeof out === 'number') closeSync(out);
    this.child = child;
    child.on('error', (error) => this.log.error(`${this.name} could not start`, { error: error.message }));
    child.on('exit', (code, signal) => {
      this.child = null;
      if (this.stopping) return;
      // A role that ran a while before dying starts over at the shortest delay.
      if (Date.now() - this.startedAt > 60_000) this.restarts = 0;
      const delay = Math.min(30_000, 500 * 2 ** this.restarts++);
      this.log.warn(`${this.name} exited; restarting`, { code, signal, in_ms: delay });
      this.restartTimer = setTimeout(() => this.start(), delay);
    });
  }

  /** SIGTERM, then SIGKILL at `killAt` (epoch ms): the platform's stop has one deadline for all roles. */
  async stop(killAt = Date.now() + 30_000): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      this.killed = true;
      this.log.warn(`${this.name} did not stop in time; killing it`);
      child.kill('SIGKILL');
    }, Math.max(0, killAt - Date.now()));
    await exited;
    clearTimeout(timer);
  }

  /** Whether stop() had to SIGKILL it. */
  killed = false;

  get pid(): number | undefined {
    return this.child?.pid;
  }
}

let parentDeath: string[] | undefined;

function parentDeathPrefix(): string[] {
  if (parentDeath === undefined) {
    const probe = spawnSync('setpriv', ['--pdeathsig', 'SIGTERM', '--', 'true'], { stdio: 'ignore' });
    parentDeath = probe.status === 0 ? ['setpriv', '--pdeathsig', 'SIGTERM', '--'] : [];
  }
  return parentDeath;
}

export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/skiff' : join(homedir(), '.skiff', 'data');
}

function findNatsServer(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean).concat('/usr/sbin', '/usr/local/bin');
  return dirs.map((dir) => join(dir, 'nats-server')).find((path) => existsSync(path));
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await portOpen(port)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** `skiff up`: the whole platform on this machine, supervised, stopped in order on Ctrl-C or SIGTERM. */
export async function main(argv: string[]): Promise<number> {
  const log = createLogger('up');
  let values: Record<string, unknown>;
  try {
    const parsed = parseFlags(argv, FLAGS, 'SKIFF_UP');
    values = parsed.values;
    // Only to refuse credentials on the command line; the roles read them from the environment themselves.
    if (values.nats !== undefined) natsTarget(parsed, { ...process.env });
    if (values['app-uids'] !== undefined) parseUidRange(values['app-uids'] as string, parsed.sources['app-uids'] === 'env' ? 'SKIFF_UP_APP_UIDS' : '--app-uids');
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`skiff up: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (values.help) {
    process.stdout.write(helpText('skiff up', FLAGS, 'SKIFF_UP') + '\n');
    return 0;
  }
  const dataDir = (values['data-dir'] as string | undefined) ?? defaultDataDir();
  const routerPort = (values['router-port'] as number | undefined) ?? 8080;
  const statusPort = (values['router-status-port'] as number | undefined) ?? 8081;
  const natsPort = (values['nats-port'] as number | undefined) ?? 4222;
  const apiPort = (values['api-port'] as number | undefined) ?? 9022;
  const domain = (values.domain as string | undefined) ?? 'localhost';
  mkdirSync(dataDir, { recursive: true, mode: 0o711 });
  restrictDataDir(dataDir, log);

  if (process.getuid?.() !== 0) {
    log.warn('not running as root: app instances and staging run as this same user, so they can read the platform\'s data dir, its NATS credentials and each other\'s files; run as root to isolate apps (README: Security model)');
  }

  const stop = stopRequests(log);
  const { stopped } = stop;

  // Started first, stopped last.
  const roles: Supervised[] = [];
  // The roles find NATS, and their credentials, in their environment: never on a command line.
  const roleEnv: NodeJS.ProcessEnv = { ...process.env };
  let natsUrl = values.nats as string | undefined;
  let credentialsOf: ((role: NatsRole) => string) | undefined;
  if (natsUrl === undefined) {
    const natsServer = findNatsServer();
    if (natsServer === undefined) {
      stop.close();
      process.stderr.write('skiff up: nats-server not found: run `npm run setup` (or apt-get install -y nats-server)\n');
      return 1;
    }
    if (await portOpen(natsPort)) {
      stop.close();
      process.stderr.write(`skiff up: port ${natsPort} is taken: stop what uses it, or pass --nats-port or --nats URL\n`);
      return 1;
    }
    const bus = preparePlatformNats(dataDir, '127.0.0.1', natsPort);
    const nats = new Supervised('nats-server', natsServer, ['-c', bus.configFile], log, join(dataDir, 'nats-server.log'));
    nats.start();
    roles.push(nats);
    natsUrl = bus.url;
    credentialsOf = bus.credentialsFile;
    for (const name of ['NATS_USER', 'NATS_PASSWORD', 'NATS_TOKEN', 'SKIFF_NATS_CREDENTIALS']) delete roleEnv[name];
    const natsUp = await Promise.race([waitForPort(natsPort, 10_000), stopped.then(() => false)]);
    if (stop.requested) {
      await nats.stop();
      stop.close();
      return 0;
    }
    if (!natsUp) {
      await nats.stop();
      stop.close();
      process.stderr.write(`skiff up: nats-server did not start on port ${natsPort}\n`);
      return 1;
    }
  }

  roleEnv.NATS_URL = natsUrl;
  const appUids = values['app-uids'] as string | undefined;
  if (appUids !== undefined) {
    // One range for the controller that hands uids out and the DEA that runs apps as them.
    roleEnv.SKIFF_CONTROLLER_APP_UIDS = appUids;
    roleEnv.SKIFF_DEA_APP_UIDS = appUids;
  }
  const credentialsFlag = values['nats-credentials'] as string | undefined;
  if (credentialsFlag !== undefined) roleEnv.SKIFF_NATS_CREDENTIALS = credentialsFlag;
  const byName = new Map<string, Supervised>();
  const role = (name: NatsRole, args: string[], env: NodeJS.ProcessEnv = roleEnv): boolean => {
    if (!roleAvailable(name)) {
      log.warn(`skipping the ${name === 'health' ? 'health manager' : name}: not part of this build`, { module: ROLE_MODULES[name] });
      return false;
    }
    const ownEnv = credentialsOf === undefined ? env : { ...env, SKIFF_NATS_CREDENTIALS: credentialsOf(name) };
    const supervised = new Supervised(name, process.execPath, [BIN, name, ...args], log, undefined, ownEnv);
    supervised.start();
    roles.push(supervised);
    byName.set(name, supervised);
    return true;
  };

  const routerUrl = `http://${domain}:${routerPort}`;
  // Drained within the stop's deadline (STOP_LIMIT_MS), which the DEA's stop shares.
  const status = loadOrCreateStatusCredentials(dataDir);
  role('router', ['--port', String(routerPort), '--status-port', String(statusPort), '--drain-timeout', '25'], {
    ...roleEnv,
    SKIFF_ROUTER_STATUS_USER: status.user,
    SKIFF_ROUTER_STATUS_PASSWORD: status.password,
  });

  const apiUrl = `http://127.0.0.1:${apiPort}`;
  let admin: ReturnType<typeof loadOrCreateAdmin> | undefined;
  let controllerStarted = false;
  if (!roleAvailable('controller')) {
    role('controller', []); // logs the skip
  } else if (await portOpen(apiPort)) {
    log.error(`port ${apiPort} is taken: not starting the controller; stop what uses it, or pass --api-port`);
  } else {
    admin = loadOrCreateAdmin(dataDir, domain);
    controllerStarted = role('controller', ['--port', String(apiPort), '--domain', domain], {
      ...roleEnv,
      SKIFF_ADMIN_EMAIL: admin.email,
      SKIFF_ADMIN_PASSWORD: admin.password,
      // Read by a controller that knows `--router-url` (control/API.md); harmless otherwise.
      SKIFF_CONTROLLER_ROUTER_URL: routerUrl,
    });
  }
  role('stager', []);
  role('health', []);
  // The DEA keeps <data-dir>/dea/<index>/ itself.
  const appPorts = values['app-ports'] as string | undefined;
  role('dea', ['--data-dir', dataDir, ...(appPorts === undefined ? [] : ['--port-range', appPorts])]);

  const routerUp = await Promise.race([waitForPort(routerPort, 20_000), stopped.then(() => false)]);
  if (!routerUp && !stop.requested) log.warn('router did not open its port yet; still trying');
  if (controllerStarted && admin !== undefined && !stop.requested) {
    const ready = await Promise.race([waitForInfo(apiUrl, 60_000), stopped.then(() => false)]);
    if (ready) {
      if (admin.created) process.stdout.write(`login: skiff login --email ${admin.email} --password ${admin.password}\n`);
      await logInLocalCli(apiUrl, admin.email, admin.password, log);
      process.stdout.write(`api: ${apiUrl}\n`);
    } else if (!stop.requested) {
      log.warn('the controller does not answer /info yet; still trying', { url: `${apiUrl}/info` });
    }
  }
  if (routerUp && !stop.requested) {
    process.stdout.write(`router: ${routerUrl}/ (apps at http://<name>.${domain}:${routerPort}/)\n`);
    process.stdout.write(`status: http://127.0.0.1:${statusPort}/health (/varz and /routes: basic auth from ${join(dataDir, 'router-status.json')})\n`);
  }

  await stopped;
  log.info('stopping the platform', { reason: stop.reason });
  // One deadline for the whole stop, so that whoever stops the platform (a
  // service manager, CI, a user at Ctrl-C) knows how long it can take.
  const killAt = Date.now() + STOP_LIMIT_MS;
  // The DEA first, with its instances (it unregisters their routes while the
  // router still listens), then what feeds it, then the router and NATS.
  for (const name of STOP_ORDER) await byName.get(name)?.stop(killAt);
  for (const supervised of roles.slice().reverse()) await supervised.stop(killAt);
  stop.close();
  return roles.some((supervised) => supervised.killed) ? 1 : 0;
}

const STOP_ORDER = ['dea', 'controller', 'stager', 'health', 'router'];

/**
 * The stop takes this long at most; the roles' own grace periods (the DEA's
 * 10 s --stop-grace for instances, the router's 25 s drain) fit inside it.
 */
const STOP_LIMIT_MS = 35_000;

interface StopRequests {
  /** Resolves at the first SIGINT or SIGTERM, or when the parent process dies. */
  stopped: Promise<void>;
  readonly requested: boolean;
  readonly reason: string | undefined;
  close(): void;
}

/**
 * The handlers stay installed for the whole stop: under `npm start` a
 * terminal's Ctrl-C reaches `skiff up` twice (from the terminal, and again
 * from npm, which forwards SIGINT and SIGTERM to its script), and a second
 * signal without a handler would end `up` half-way, with its roles stopping
 * on their own. A parent that dies (npm or a shell killed with SIGKILL)
 * leaves `up` with nobody to stop it: it notices the new parent and stops.
 */
function stopRequests(log: Logger): StopRequests {
  let requested = false;
  let reason: string | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  const request = (why: string): void => {
    if (requested) return;
    requested = true;
    reason = why;
    clearInterval(parentWatch);
    resolveStopped();
  };
  const onSignal = (signal: NodeJS.Signals): void => request(signal);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const parent = process.ppid;
  const parentWatch = setInterval(() => {
    if (process.ppid === parent) return;
    log.warn('the parent process exited', { parent_pid: parent });
    request('parent exited');
  }, PARENT_CHECK_MS);
  return {
    stopped,
    get requested() {
      return requested;
    },
    get reason() {
      return reason;
    },
    // The signal handlers stay: a late duplicate signal must not turn a clean exit into a killed one.
    close() {
      clearInterval(parentWatch);
    },
  };
}

const PARENT_CHECK_MS = 1000;

/** A log only the platform reads (0600, an older one too): nats-server's says more than apps should know. */
function openPrivateLog(path: string): number {
  const fd = openSync(path, 'a', 0o600);
  fchmodSync(fd, 0o600);
  return fd;
}

/**
 * The data dir is traverse-only (0711): apps reach their instance
 * directories through it and list nothing in it. One that is not ours alone
 * (sticky or world-writable, like /tmp) is left as it is, with a warning.
 */
function restrictDataDir(dataDir: string, log: Logger): void {
  const info = statSync(dataDir);
  const mode = info.mode & 0o7777;
  if (mode === 0o711) return;
  if (info.uid === process.getuid?.() && (mode & 0o1002) === 0) chmodSync(dataDir, 0o711);
  else if ((mode & 0o044) !== 0) log.warn(`apps can list the data dir ${dataDir} (mode ${mode.toString(8)}): give the platform a directory of its own, mode 0711`);
}

const ROLE_MODULES: Record<string, string> = {
  router: '../router/main',
  controller: '../control/controller/main',
  stager: '../control/stager/main',
  dea: '../dea/main',
  health: '../control/health/main',
};

/** The roles are written on separate branches; a build without one runs without it. */
function roleAvailable(name: string): boolean {
  try {
    require.resolve(ROLE_MODULES[name]!);
    return true;
  } catch {
    return false;
  }
}

async function waitForInfo(apiUrl: string, timeoutMs: number): Promise<boolean> {
  const api = new Api(apiUrl);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      await api.json('GET', '/info', { idleTimeoutMs: 5000 });
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return false;
}

/** `skiff up` logs the local CLI in as the admin, so `skiff push` works at once. */
async function logInLocalCli(apiUrl: string, email: string, password: string, log: Logger): Promise<void> {
  try {
    const home = skiffHome();
    let current: { target?: string; token?: string } = {};
    try {
      current = readConfig(home);
    } catch {
      // A broken config is replaced: this login is what the user asked `up` for.
    }
    // A token that still works as this admin stays: after `skiff passwd`, admin.json holds the
    // first password, and a login with it on every start would count towards the lockout.
    if (current.token !== undefined) {
      const info = await new Api(apiUrl, current.token).json<{ user?: unknown }>('GET', '/info').catch(() => undefined);
      if (info?.user === email) {
        writeConfig({ ...current, target: apiUrl, token: current.token }, home);
        return;
      }
    }
    const reply = await new Api(apiUrl).json<{ token?: unknown }>('POST', `/users/${encodeURIComponent(email)}/tokens`, { body: { password } });
    if (typeof reply?.token !== 'string') throw new Error('no token in the answer');
    writeConfig({ ...current, target: apiUrl, token: reply.token }, home);
  } catch (error) {
    // Never the password: only what went wrong.
    log.warn('could not log the local CLI in; run the login line above', { error: (error as Error).message });
  }
}
