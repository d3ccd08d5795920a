import { mkdirSync, chmodSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { helpText, parseFlags, UsageError, type FlagSpec } from '../bus/flags';
import { NATS_FLAGS, natsTarget } from '../bus/nats-options';
import { NODE_NAME, NODE_ROLES, type NodeRole } from '../bus/platform';
import { DEFAULT_APP_UIDS, formatRange, parseUidRange } from '../bus/uids';
import { createLogger, type Logger } from '../bus/log';
import { Api } from './client/api';
import { readConfig, skiffHome, writeConfig } from './client/config';
import { NodeSetupError, NodeSupervisor, portOpen, waitForPort, type RoleLaunch } from './node/supervisor';
import { defaultNodeName, NODE_FLAG } from '../bus/component';
import { loadNodeState, parseRoles, saveNodeState, type NodeState } from './node/state';
import { decodeJoinToken, type JoinToken } from './node/token';
import { loadOrCreateAdmin, loadOrCreateStatusCredentials } from './up-admin';

/** Roles with a metrics port of their own, in the order of `--metrics-port`'s offsets. */
const METRICS_ROLES: readonly NodeRole[] = ['controller', 'stager', 'dea', 'health', 'services'];

const FLAGS: readonly FlagSpec[] = [
  { name: 'data-dir', kind: 'string', help: 'where the platform keeps its state', defaultText: '~/.skiff/data, /var/lib/skiff as root' },
  { name: 'router-port', kind: 'number', min: 1, max: 65535, help: 'router port for app traffic', defaultText: '8080' },
  { name: 'router-status-port', kind: 'number', min: 1, max: 65535, help: 'router status port', defaultText: '8081' },
  { name: 'api-port', kind: 'number', min: 1, max: 65535, help: 'controller API port', defaultText: '9022' },
  { name: 'metrics-port', kind: 'number', min: 0, max: 65535 - (METRICS_ROLES.length - 1), help: `first of the roles' metrics ports (GET /metrics, basic auth from router-status.json): ${METRICS_ROLES.map((role, i) => `${role} +${i}`).join(', ')}; 0: none; remembered`, defaultText: 'free ports, chosen once' },
  { name: 'nats-port', kind: 'number', min: 1, max: 65535, help: 'port of the nats-server started here', defaultText: '4222' },
  { name: 'cluster-port', kind: 'number', min: 1, max: 65535, help: 'port the nats-servers of a cluster route to each other on', defaultText: '6222' },
  { name: 'nats', kind: 'string', env: 'NATS_URL', help: 'use this NATS server instead of starting one (its credentials: --nats-credentials, or NATS_USER and NATS_PASSWORD)' },
  { ...NATS_FLAGS.find((flag) => flag.name === 'nats-credentials')!, help: 'with --nats: the roles\' NATS credentials file, {"user","pass"} or {"token"}, mode 0600' },
  { name: 'domain', kind: 'string', help: 'apps answer at <name>.<domain>', defaultText: 'localhost' },
  { name: 'app-ports', kind: 'string', help: 'port range of app instances (the DEA\'s --port-range); give each platform on one machine its own', defaultText: '61000-61999' },
  { name: 'app-uids', kind: 'string', help: 'uids of apps (the controller\'s and the DEA\'s --app-uids); give each platform on one machine its own', defaultText: formatRange(DEFAULT_APP_UIDS) },
  { ...NODE_FLAG, help: 'this node\'s name in the cluster (letters, digits, _ and -); remembered' },
  { name: 'roles', kind: 'string', help: `roles of this node, comma-separated (${NODE_ROLES.join(', ')}); remembered`, defaultText: 'all; dea with --join' },
  { name: 'advertise', kind: 'string', help: 'the address other hosts reach this node at (DEAs register app routes with it); remembered', defaultText: '127.0.0.1' },
  { name: 'nats-advertise', kind: 'string', help: 'the address the cluster reaches this node\'s nats-server at, when not --advertise (a control network); remembered', defaultText: 'the --advertise address' },
  { name: 'join', kind: 'string', secret: true, help: 'join the cluster of this token (the join: line of its first node); prefer SKIFF_UP_JOIN: a command line is readable by every process' },
  { name: 'nats-server', kind: 'boolean', help: 'with --join: run a nats-server of the cluster here too (three of them replicate every bucket)' },
];

export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/skiff' : join(homedir(), '.skiff', 'data');
}

interface UpSettings {
  dataDir: string;
  routerPort: number;
  statusPort: number;
  apiPort: number;
  /** Given: the first metrics port (0: none). */
  metricsPort?: number;
  natsPort: number;
  clusterPort: number;
  domain: string;
  appPorts?: string;
  appUids?: string;
  externalNats?: { url: string; credentialsFile?: string };
  join?: JoinToken;
  state: NodeState;
}

function settingsFrom(argv: string[]): UpSettings | { help: true } {
  const parsed = parseFlags(argv, FLAGS, 'SKIFF_UP');
  const { values, sources } = parsed;
  if (values.help) return { help: true };
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  // Only to refuse credentials on the command line; the roles read them from the environment themselves.
  if (values.nats !== undefined) natsTarget(parsed, { ...process.env });
  const origin = (flag: string) => (sources[flag] === 'env' ? (flag === 'node' ? 'SKIFF_NODE' : `SKIFF_UP_${flag.replace(/-/g, '_').toUpperCase()}`) : `--${flag}`);
  if (values['app-uids'] !== undefined) parseUidRange(values['app-uids'] as string, origin('app-uids'));
  if (values['metrics-port'] !== undefined && !Number.isInteger(values['metrics-port'])) throw new UsageError(`${origin('metrics-port')} must be a whole number, got ${values['metrics-port']}`);
  const dataDir = (values['data-dir'] as string | undefined) ?? defaultDataDir();
  const join = values.join === undefined ? undefined : decodeJoinToken(values.join as string, origin('join'));
  if (join && values.nats !== undefined) throw new UsageError('--join and --nats exclude each other: a joining node finds NATS in its token');
  if (values['nats-server'] && !join && loadNodeState(dataDir)?.joined === undefined) {
    throw new UsageError('--nats-server is for a node that joins (--join TOKEN): the first node always runs one');
  }
  const name = values.node as string | undefined;
  if (name !== undefined && !NODE_NAME.test(name)) throw new UsageError(`${origin('node')} must be 1-63 letters, digits, '_' or '-', starting with a letter or digit, got ${JSON.stringify(name)}`);
  const address = (flag: string): string | undefined => {
    const value = values[flag] as string | undefined;
    if (value !== undefined && !/^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(value)) throw new UsageError(`${origin(flag)} must be an address or a host name, got ${JSON.stringify(value)}`);
    return value;
  };
  const advertise = address('advertise');
  const natsAdvertise = address('nats-advertise');
  const roles = values.roles === undefined ? undefined : parseRoles(values.roles as string, origin('roles'));

  const saved = loadNodeState(dataDir);
  if (saved && name !== undefined && name !== saved.name) {
    throw new UsageError(`the data dir ${dataDir} is node ${saved.name}'s: give --node ${saved.name}, or another --data-dir`);
  }
  const state: NodeState = saved ?? {
    name: name ?? defaultNodeName(),
    roles: join ? ['dea'] : [...NODE_ROLES],
    advertise: '127.0.0.1',
    natsServer: join ? values['nats-server'] === true : true,
  };
  if (roles !== undefined) state.roles = roles;
  if (advertise !== undefined) state.advertise = advertise;
  if (natsAdvertise !== undefined) state.natsAdvertise = natsAdvertise;
  if (values.nats !== undefined) state.natsServer = false;
  return {
    dataDir,
    routerPort: (values['router-port'] as number | undefined) ?? 8080,
    statusPort: (values['router-status-port'] as number | undefined) ?? 8081,
    apiPort: (values['api-port'] as number | undefined) ?? 9022,
    metricsPort: values['metrics-port'] as number | undefined,
    natsPort: (values['nats-port'] as number | undefined) ?? 4222,
    clusterPort: (values['cluster-port'] as number | undefined) ?? 6222,
    domain: (values.domain as string | undefined) ?? 'localhost',
    appPorts: values['app-ports'] as string | undefined,
    appUids: values['app-uids'] as string | undefined,
    externalNats: values.nats === undefined ? undefined : { url: values.nats as string, credentialsFile: values['nats-credentials'] as string | undefined },
    // A node that joined already has its credentials: the token is only for its first start.
    join: saved?.joined === undefined ? join : undefined,
    state,
  };
}

/** `skiff up`: a node of the platform, alone or in a cluster; supervised, stopped in order on Ctrl-C or SIGTERM. */
export async function main(argv: string[]): Promise<number> {
  const log = createLogger('up');
  let settings: UpSettings | { help: true };
  try {
    settings = settingsFrom(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`skiff up: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if ('help' in settings) {
    process.stdout.write(helpText('skiff up', FLAGS, 'SKIFF_UP') + '\n');
    return 0;
  }
  // The token lets a host join the cluster: out of /proc/<pid>/cmdline, where every process could read it.
  if (argv.some((arg) => arg === '--join' || arg.startsWith('--join='))) process.title = 'skiff up';
  delete process.env.SKIFF_UP_JOIN;
  const { dataDir, state } = settings;
  mkdirSync(dataDir, { recursive: true, mode: 0o711 });
  restrictDataDir(dataDir, log);
  saveNodeState(dataDir, state);

  if (process.getuid?.() !== 0) {
    log.warn('not running as root: app instances and staging run as this same user, so they can read the platform\'s data dir, its NATS credentials and each other\'s files; run as root to isolate apps (README: Security model)');
  }

  const stop = stopRequests(log);
  const { stopped } = stop;

  // The roles find NATS, and their credentials, in their environment: never on a command line.
  const roleEnv: NodeJS.ProcessEnv = { ...process.env };
  if (!settings.externalNats) for (const name of ['NATS_USER', 'NATS_PASSWORD', 'NATS_TOKEN', 'SKIFF_NATS_CREDENTIALS', 'NATS_URL']) delete roleEnv[name];
  if (settings.appUids !== undefined) {
    // One range for the controller that hands uids out and the DEA that runs apps as them.
    roleEnv.SKIFF_CONTROLLER_APP_UIDS = settings.appUids;
    roleEnv.SKIFF_DEA_APP_UIDS = settings.appUids;
  }

  const { domain, routerPort, statusPort, apiPort } = settings;
  const advertised = state.advertise !== '127.0.0.1';
  const routerUrl = `http://${domain}:${routerPort}`;
  const apiHost = advertised ? state.advertise : '127.0.0.1';
  const apiUrl = `http://${apiHost}:${apiPort}`;
  // Every role's metrics, behind the node's status credentials (the router's /metrics is on its status port).
  const metricsPorts = await chooseMetricsPorts(state, settings.metricsPort, apiHost, log);
  saveNodeState(dataDir, state);
  const metricsAddresses: Partial<Record<NodeRole, string>> = {};
  metricsAddresses.router = `${apiHost}:${statusPort}`;
  for (const [role, port] of Object.entries(metricsPorts ?? {})) metricsAddresses[role as NodeRole] = `${apiHost}:${port}`;
  const metricsLaunch = (role: NodeRole): { args: string[]; env: NodeJS.ProcessEnv } => {
    const port = metricsPorts?.[role];
    if (port === undefined) return { args: [], env: {} };
    const status = loadOrCreateStatusCredentials(dataDir);
    const prefix = `SKIFF_${role.toUpperCase()}`;
    return {
      args: ['--metrics-port', String(port), '--metrics-host', apiHost],
      env: { [`${prefix}_METRICS_USER`]: status.user, [`${prefix}_METRICS_PASSWORD`]: status.password },
    };
  };
  // The first admin is the first node's to make; a node that joined finds the users in the cluster.
  const admin = settings.join === undefined && state.joined === undefined && state.roles.includes('controller') ? loadOrCreateAdmin(dataDir, domain) : undefined;
  const launch: RoleLaunch = (role) => {
    if (!roleAvailable(role)) {
      log.warn(`skipping the ${role === 'health' ? 'health manager' : role}: not part of this build`, { module: ROLE_MODULES[role] });
      return undefined;
    }
    const own = roleLaunch(role);
    const metrics = metricsLaunch(role);
    return { args: [...own.args, ...metrics.args], env: { ...own.env, ...metrics.env } };
  };
  const roleLaunch = (role: NodeRole): { args: string[]; env?: NodeJS.ProcessEnv } => {
    switch (role) {
      case 'router': {
        const status = loadOrCreateStatusCredentials(dataDir);
        // Drained within the stop's deadline (STOP_LIMIT_MS), which the DEA's stop shares.
        return {
          args: ['--port', String(routerPort), '--status-port', String(statusPort), '--drain-timeout', '25'],
          env: { SKIFF_ROUTER_STATUS_USER: status.user, SKIFF_ROUTER_STATUS_PASSWORD: status.password },
        };
      }
      case 'controller':
        return {
          args: ['--port', String(apiPort), '--domain', domain, ...(advertised ? ['--host', state.advertise] : [])],
          env: {
            ...(admin === undefined ? {} : { SKIFF_ADMIN_EMAIL: admin.email, SKIFF_ADMIN_PASSWORD: admin.password }),
            SKIFF_CONTROLLER_ROUTER_URL: routerUrl,
          },
        };
      case 'services':
        // Its backends' data under <data-dir>/services/; credentials name the address apps on other nodes reach.
        return { args: ['--data-dir', dataDir, ...(advertised ? ['--host', state.advertise] : [])] };
      case 'dea':
        // The DEA keeps <data-dir>/dea/<index>/ itself; apps listen on the advertised address, and routes carry it.
        return {
          args: ['--data-dir', dataDir, ...(settings.appPorts === undefined ? [] : ['--port-range', settings.appPorts]), ...(advertised ? ['--host', state.advertise] : [])],
        };
      default:
        return { args: [] };
    }
  };

  if (state.roles.includes('controller') && (await portOpen(apiHost, apiPort))) {
    log.error(`port ${apiPort} is taken: not starting the controller; stop what uses it, or pass --api-port`);
    state.roles = state.roles.filter((role) => role !== 'controller');
  }
  const node = new NodeSupervisor(
    state,
    {
      dataDir, domain, routerPort, statusPort, apiPort,
      natsPort: settings.natsPort, clusterPort: settings.clusterPort,
      appPorts: settings.appPorts, appUids: settings.appUids,
      externalNats: settings.externalNats, join: settings.join, env: roleEnv, metrics: metricsAddresses,
    },
    launch,
    log,
  );
  try {
    await Promise.race([node.start(stopped), stopped]);
  } catch (error) {
    await node.stop(Date.now() + STOP_LIMIT_MS);
    stop.close();
    if (!(error instanceof NodeSetupError)) throw error;
    process.stderr.write(`skiff up: ${error.message}\n`);
    return 1;
  }

  const runs = (role: NodeRole) => state.roles.includes(role) && node.isRunning(role);
  const routerUp = runs('router') ? await Promise.race([waitForPort('127.0.0.1', routerPort, 20_000), stopped.then(() => false)]) : false;
  if (runs('router') && !routerUp && !stop.requested) log.warn('router did not open its port yet; still trying');
  if (runs('controller') && !stop.requested) {
    const ready = await Promise.race([waitForInfo(apiUrl, 60_000), stopped.then(() => false)]);
    if (ready) {
      // The environment form: a --password flag would sit in /proc/<pid>/cmdline for every local user.
      if (admin?.created) process.stdout.write(`login: SKIFF_PASSWORD=${admin.password} skiff login --email ${admin.email}\n`);
      if (admin !== undefined) await logInLocalCli(apiUrl, admin.email, admin.password, log);
      process.stdout.write(`api: ${apiUrl}\n`);
    } else if (!stop.requested) {
      log.warn('the controller does not answer /info yet; still trying', { url: `${apiUrl}/info` });
    }
  }
  if (routerUp && !stop.requested) {
    process.stdout.write(`router: ${routerUrl}/ (apps at http://<name>.${domain}:${routerPort}/)\n`);
    process.stdout.write(`status: http://127.0.0.1:${statusPort}/health (/varz and /routes: basic auth from ${join(dataDir, 'router-status.json')})\n`);
  }
  const scraped = state.roles.filter((role) => metricsAddresses[role] !== undefined && (role !== 'router' || routerUp));
  if (scraped.length > 0 && !stop.requested) {
    process.stdout.write(`metrics: ${scraped.map((role) => `${role} http://${metricsAddresses[role]}/metrics`).join(', ')} (basic auth from ${join(dataDir, 'router-status.json')})\n`);
  }
  const token = node.joinToken();
  if (token !== undefined && !stop.requested) process.stdout.write(`join: skiff up --join ${token}\n`);
  if (!stop.requested) process.stdout.write(`node: ${state.name} (${[...state.roles, ...(node.info().nats_server ? ['nats-server'] : [])].join(', ')})\n`);

  await stopped;
  log.info('stopping the platform', { reason: stop.reason });
  // One deadline for the whole stop, so that whoever stops the platform (a
  // service manager, CI, a user at Ctrl-C) knows how long it can take.
  const killed = await node.stop(Date.now() + STOP_LIMIT_MS);
  stop.close();
  return killed ? 1 : 0;
}

/**
 * Each role's metrics port: from --metrics-port (remembered), else the ones
 * remembered, else free ones chosen now and remembered. A remembered port
 * something else took meanwhile is replaced, with a warning: the role would
 * not start on it. Null: none.
 */
async function chooseMetricsPorts(state: NodeState, base: number | undefined, host: string, log: Logger): Promise<Partial<Record<NodeRole, number>> | null> {
  if (base === 0) state.metricsPorts = null;
  else if (base !== undefined) state.metricsPorts = Object.fromEntries(METRICS_ROLES.map((role, i) => [role, base + i]));
  if (state.metricsPorts === null) return null;
  const ports: Partial<Record<NodeRole, number>> = { ...state.metricsPorts };
  for (const role of METRICS_ROLES) {
    const remembered = ports[role];
    if (remembered !== undefined && !(await portOpen(host, remembered))) continue;
    if (remembered !== undefined && base !== undefined) continue; // asked for: the role says clearly if it cannot have it
    const port = await freePort(host);
    if (remembered !== undefined) log.warn(`the ${role}'s metrics port ${remembered} is taken: it moves to ${port}`);
    ports[role] = port;
  }
  state.metricsPorts = ports;
  return ports;
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

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
  services: '../services/main',
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
