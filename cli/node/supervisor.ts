// A node of the cluster: `skiff up` on one host. It runs the roles it is
// given (each its own supervised process) and, on a node that serves NATS,
// a nats-server of the cluster; it remembers its roles across restarts,
// starts and stops one on request (`skiff role add|remove` through the
// controller: nodeRolesSubject), announces itself as a "Node" component, and
// keeps its nats-server's routes to the cluster's other servers current.
//
// How a cluster grows (bus/platform.ts, CLUSTER_BUCKET): every node that
// serves NATS writes `nats.<node>` with its client and route addresses; every
// such node watches those entries and routes to all of them. A lone first
// node's nats-server runs standalone (JetStream cannot cluster alone); when
// the first peer appears it restarts once with a cluster block, and
// nats-server carries its streams into the cluster. Later peers only change
// the routes (SIGHUP). The controller raises buckets to three replicas once
// three servers serve (control/controller/replicas.ts).

import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { delimiter, join } from 'node:path';
import type { KV } from 'nats';
import { ComponentAnnouncer, NODE_COMPONENT_TYPE } from '../../bus/component';
import { connectBus, type Bus, type BusMessage } from '../../bus/connection';
import { isLive, liveEntries, openKv } from '../../bus/jetstream';
import type { Logger } from '../../bus/log';
import type { NatsAuth } from '../../bus/nats-options';
import {
  CLUSTER_BUCKET, NODE_CREDENTIALS_QUEUE, NODE_CREDENTIALS_SUBJECT, NODE_ROLES, nodeRolesSubject,
  type NatsPeer, type NodeCredentialsReply, type NodeCredentialsRequest, type NodeInfo, type NodeRole, type NodeRolesRequest,
} from '../../bus/platform';
import { OPERATOR_USER } from '../../bus/permissions';
import { Subjects } from '../../bus/subjects';
import {
  CLUSTER_NAME, credentialsFile, ensureNatsDir, loadOrCreateSecrets, loadSecrets, natsServerConfig, readCredentials,
  saveSecrets, serverConfigFile, serverUsers, writeCredentials, writeSecret, type ClusterSecrets,
} from './nats';
import { dumpStreams, removeDump, restoreStreams } from './migrate';
import { saveNodeState, type NodeState } from './state';
import { Supervised } from './supervised';
import { encodeJoinToken, type JoinToken } from './token';

export interface NodeOptions {
  dataDir: string;
  domain: string;
  routerPort: number;
  statusPort: number;
  apiPort: number;
  natsPort: number;
  clusterPort: number;
  appPorts?: string;
  appUids?: string;
  /** `skiff up --nats URL`: the roles use that server, as its credentials (from the environment) say. */
  externalNats?: { url: string; credentialsFile?: string };
  /** `skiff up --join TOKEN`, first start of a joining node. */
  join?: JoinToken;
  /** The environment of `skiff up`, which the roles start from (without NATS credentials). */
  env: NodeJS.ProcessEnv;
  /** Where each role serves GET /metrics, for `skiff node info`. */
  metrics?: Partial<Record<NodeRole, string>>;
}

/** What a role gets beyond NATS: its flags and environment (status credentials, the first admin, ...). */
export type RoleLaunch = (role: NodeRole, node: NodeSupervisor) => { args: string[]; env?: NodeJS.ProcessEnv } | undefined;

export class NodeSetupError extends Error {
  override name = 'NodeSetupError';
}

const BIN = join(__dirname, '..', '..', '..', 'bin', 'skiff');
const CREDENTIALS_TIMEOUT_MS = 10_000;
const CREDENTIALS_PATIENCE_MS = 60_000;
const ANNOUNCE_INTERVAL_MS = 20_000;
// The data services after the apps that use them and the controller that binds them.
const STOP_ORDER: NodeRole[] = ['dea', 'controller', 'stager', 'health', 'services', 'router'];
/**
 * The `skiff` command that runs each role: its name, but for the services
 * role, because `skiff services` is the user's list of service instances
 * (design.md, Data services).
 */
export const ROLE_COMMANDS: Readonly<Record<NodeRole, string>> = {
  router: 'router', controller: 'controller', stager: 'stager', dea: 'dea', health: 'health', services: 'services-node',
};
/** Roles that write JetStream: paused while a first node's data moves into the cluster. */
const JETSTREAM_WRITERS: NodeRole[] = ['controller', 'health', 'stager', 'services'];

export class NodeSupervisor {
  private readonly roles = new Map<NodeRole, Supervised>();
  private nats: Supervised | undefined;
  private bus: Bus | undefined;
  private secrets: ClusterSecrets | undefined;
  private peers: NatsPeer[] = [];
  private clustered = false;
  private kv: KV | undefined;
  private readonly natsDir: string;
  private readonly uuid = randomUUID();
  private readonly startedAt = new Date();
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  private announcer: ComponentAnnouncer | undefined;
  /** A role that had to be SIGKILLed at the stop's deadline. */
  private killedAny = false;
  private reconfiguring: Promise<void> = Promise.resolve();

  constructor(
    readonly state: NodeState,
    private readonly options: NodeOptions,
    private readonly launch: RoleLaunch,
    private readonly log: Logger,
  ) {
    this.natsDir = ensureNatsDir(options.dataDir);
  }

  get name(): string {
    return this.state.name;
  }

  /** This node's nats-server for clients, when it runs one. */
  get localNatsUrl(): string | undefined {
    if (!this.state.natsServer || this.options.externalNats) return undefined;
    return `nats://${this.natsHost()}:${this.options.natsPort}`;
  }

  /** Where this node's roles find NATS: its own server first, then the cluster's others. */
  servers(): string[] {
    if (this.options.externalNats) return [this.options.externalNats.url];
    const all = [this.localNatsUrl, ...this.peers.filter((p) => p.node !== this.name).map((p) => p.client), ...(this.state.joined?.servers ?? [])];
    return [...new Set(all.filter((s): s is string => s !== undefined))];
  }

  /** Brings the node up: credentials, its nats-server, its bus, its roles. Throws NodeSetupError with one clear line. */
  async start(stopped: Promise<void>): Promise<void> {
    const { options, state } = this;
    if (options.join) await this.joinCluster(options.join);
    else if (!options.externalNats && state.natsServer) this.secrets = loadOrCreateSecrets(this.natsDir);
    else if (state.natsServer) this.secrets = loadSecrets(this.natsDir);

    if (state.natsServer && !options.externalNats) {
      this.peers = this.savedPeers();
      if (!this.peers.some((p) => p.node === this.name)) this.peers.push(this.ownPeer());
      await this.startNatsServer(stopped);
      // A copy into the cluster that a stop cut short is finished first.
      if (this.clustered && this.secrets) await this.restoreDump();
    }
    await this.connectNodeBus();
    if (this.closed) return;
    this.serveRoleRequests();
    this.startAnnouncing();
    if (this.secrets) this.serveCredentials();
    if (state.natsServer && !options.externalNats) await this.joinNatsPeers();
    this.timers.push(setInterval(() => this.announce(), ANNOUNCE_INTERVAL_MS));
    for (const role of NODE_ROLES) if (state.roles.includes(role)) await this.startRole(role);
  }

  // ---- joining ----

  /** A node's first start with a token: asks the cluster for its roles' credentials (and its nats-server's). */
  private async joinCluster(token: JoinToken): Promise<void> {
    let bus: Bus;
    try {
      bus = await connectBus({
        servers: token.servers,
        name: `skiff-node-${this.name}-join`,
        logger: this.log,
        auth: { user: token.user, pass: token.pass, origin: 'the join token' },
        waitForServer: false,
      });
    } catch (error) {
      throw new NodeSetupError(`cannot join: ${(error as Error).message}`);
    }
    try {
      this.state.joined = { servers: token.servers };
      const reply = await this.requestCredentials(bus, this.state.roles);
      if (this.state.natsServer) {
        if (!('credentials' in reply) || reply.nats === undefined) throw new NodeSetupError('cannot join: no node of the cluster gave this node its nats-server\'s secrets');
        const users: Record<string, string> = {};
        for (const { user, pass } of reply.nats.users) users[user] = pass;
        this.secrets = { users, route: reply.nats.route, cluster: reply.nats.cluster };
        saveSecrets(this.natsDir, this.secrets);
        // Through a server already in the cluster: this node's own cannot serve JetStream until the cluster forms around it.
        await this.registerPeer(bus);
      }
      writeCredentials(this.natsDir, token.user, token.pass, token.servers);
      saveNodeState(this.options.dataDir, this.state);
      this.log.info('joined the cluster', { node: this.name, roles: this.state.roles.join(','), nats_server: this.state.natsServer });
    } finally {
      await bus.close();
    }
  }

  private async requestCredentials(bus: Bus, roles: NodeRole[]): Promise<Extract<NodeCredentialsReply, { credentials: unknown }>> {
    const request: NodeCredentialsRequest = { node: this.name, roles, nats_server: this.state.natsServer };
    let reply: NodeCredentialsReply | undefined;
    // The nodes that answer may be busy re-forming the cluster (a nats-server restarting as it grows): try for a minute.
    const deadline = Date.now() + CREDENTIALS_PATIENCE_MS;
    for (let attempt = 1; reply === undefined; attempt++) {
      try {
        reply = await bus.request<NodeCredentialsReply>(NODE_CREDENTIALS_SUBJECT, request, CREDENTIALS_TIMEOUT_MS);
      } catch (error) {
        if (Date.now() >= deadline || this.closed) throw new NodeSetupError(`cannot get this node's credentials from the cluster: ${(error as Error).message}`);
        if (attempt === 1) this.log.info('no node of the cluster gives credentials yet; trying again', { error: (error as Error).message });
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    if (typeof reply !== 'object' || reply === null || 'error' in reply) {
      throw new NodeSetupError(`the cluster refused this node's credentials: ${(reply as { error?: string })?.error ?? 'no answer'}`);
    }
    for (const role of roles) {
      const given = reply.credentials[role];
      if (given === undefined) throw new NodeSetupError(`the cluster gave no credentials for the ${role} role`);
      writeCredentials(this.natsDir, given.user, given.pass, this.servers());
    }
    return reply;
  }

  /** Answers joining nodes (this node holds the cluster's secrets): their roles' credentials, and a nats-server's whole authorization. */
  private serveCredentials(): void {
    this.bus!.subscribe(NODE_CREDENTIALS_SUBJECT, (msg) => this.onCredentialsRequest(msg), { queue: NODE_CREDENTIALS_QUEUE });
  }

  private onCredentialsRequest(msg: BusMessage): void {
    const secrets = this.secrets!;
    let request: Partial<NodeCredentialsRequest>;
    try {
      request = JSON.parse(new TextDecoder().decode(msg.data)) as Partial<NodeCredentialsRequest>;
    } catch {
      msg.respond({ error: 'the request is not JSON' });
      return;
    }
    const roles = Array.isArray(request.roles) ? request.roles : [];
    const unknown = roles.find((role) => !(NODE_ROLES as readonly unknown[]).includes(role));
    if (unknown !== undefined || typeof request.node !== 'string') {
      msg.respond({ error: `unknown role ${JSON.stringify(unknown)} or no node name` });
      return;
    }
    const credentials: Partial<Record<NodeRole, { user: string; pass: string }>> = {};
    for (const role of roles as NodeRole[]) credentials[role] = { user: role, pass: secrets.users[role]! };
    const reply: NodeCredentialsReply = { credentials };
    if (request.nats_server === true) {
      reply.nats = { users: Object.entries(secrets.users).map(([user, pass]) => ({ user, pass })), route: secrets.route, cluster: secrets.cluster };
    }
    // Names only: the reply itself goes to the asking node's inbox, never to a log.
    this.log.info('gave a node its credentials', { node: request.node, roles: roles.join(','), nats_server: request.nats_server === true });
    msg.respond(reply);
  }

  // ---- the node's own nats-server and the cluster's routes ----

  private natsHost(): string {
    return this.state.natsAdvertise ?? this.state.advertise;
  }

  private listenHost(): string {
    // Alone on 127.0.0.1 it stays private; a node others reach listens on every address.
    return this.natsHost() === '127.0.0.1' ? '127.0.0.1' : '0.0.0.0';
  }

  private ownPeer(): NatsPeer {
    return {
      node: this.name,
      client: `nats://${this.natsHost()}:${this.options.natsPort}`,
      route: `nats-route://${this.natsHost()}:${this.options.clusterPort}`,
      updated: Math.floor(Date.now() / 1000),
    };
  }

  private savedPeers(): NatsPeer[] {
    try {
      const peers = JSON.parse(readFileSync(join(this.natsDir, 'peers.json'), 'utf8')) as NatsPeer[];
      return Array.isArray(peers) ? peers.filter((p) => typeof p?.node === 'string' && typeof p.route === 'string') : [];
    } catch {
      return [];
    }
  }

  private writeNatsConfig(): void {
    const secrets = this.secrets!;
    const others = this.peers.filter((p) => p.node !== this.name);
    // A joining nats node routes to the cluster from the start; the first node only once it has a peer.
    this.clustered = others.length > 0 || this.options.join !== undefined || this.state.joined !== undefined;
    const routes = [this.ownPeer(), ...others].map((p) => p.route);
    writeSecret(
      serverConfigFile(this.natsDir),
      natsServerConfig({
        name: this.name,
        host: this.listenHost(),
        port: this.options.natsPort,
        advertise: this.listenHost() === '0.0.0.0' ? this.natsHost() : undefined,
        storeDir: this.natsDir,
        users: serverUsers(secrets),
        cluster: this.clustered
          ? { name: secrets.cluster ?? CLUSTER_NAME, host: this.listenHost(), port: this.options.clusterPort, route: secrets.route, routes }
          : undefined,
      }),
    );
    // The credentials files roles read name the servers as they are now.
    for (const [user, pass] of Object.entries(secrets.users)) writeCredentials(this.natsDir, user, pass, this.servers());
  }

  private async startNatsServer(stopped: Promise<void>): Promise<void> {
    const binary = findNatsServer();
    if (binary === undefined) throw new NodeSetupError('nats-server not found: run `npm run setup` (or apt-get install -y nats-server)');
    if (await portOpen(this.natsHost() === '127.0.0.1' ? '127.0.0.1' : this.natsHost(), this.options.natsPort)) {
      throw new NodeSetupError(`port ${this.options.natsPort} is taken: stop what uses it, or pass --nats-port or --nats URL`);
    }
    this.writeNatsConfig();
    this.nats = new Supervised('nats-server', binary, ['-c', serverConfigFile(this.natsDir)], this.log, join(this.options.dataDir, 'nats-server.log'));
    this.nats.start();
    const up = await Promise.race([waitForPort(this.natsHost(), this.options.natsPort, 10_000), stopped.then(() => false)]);
    if (!up && !this.closed) throw new NodeSetupError(`nats-server did not start on port ${this.options.natsPort}`);
  }

  /** The node supervisor's own connection, as the `node` user. */
  private async connectNodeBus(): Promise<void> {
    let auth: NatsAuth | undefined;
    if (this.secrets) auth = { user: 'node', pass: this.secrets.users.node!, origin: credentialsFile(this.natsDir, 'node') };
    else {
      const saved = readCredentials(this.natsDir, 'node');
      if (saved) auth = { user: saved.user, pass: saved.pass!, origin: credentialsFile(this.natsDir, 'node') };
    }
    if (this.options.externalNats && auth === undefined) {
      this.log.info('no node credentials for --nats: the node takes no role requests over NATS');
      return;
    }
    this.bus = await connectBus({ servers: this.servers(), name: `skiff-node-${this.name}`, logger: this.log, auth, waitForServer: true });
  }

  /** Adds this server to the cluster's list, and reads the list (the servers to route to). */
  private async registerPeer(bus: Bus): Promise<void> {
    const kv = await openKv(bus.nats.jetstream({ timeout: 10_000 }), CLUSTER_BUCKET, { history: 1 });
    await kv.put(`nats.${this.name}`, new TextEncoder().encode(JSON.stringify(this.ownPeer())));
    const peers: NatsPeer[] = [];
    for (const entry of await liveEntries(kv, 'nats.>')) {
      try {
        peers.push(JSON.parse(new TextDecoder().decode(entry.value)) as NatsPeer);
      } catch {
        this.log.warn('unreadable cluster entry, skipped', { key: entry.key });
      }
    }
    this.setPeers(peers);
  }

  private setPeers(peers: NatsPeer[]): boolean {
    const next = [...peers].sort((a, b) => a.node.localeCompare(b.node));
    const shape = (list: NatsPeer[]) => JSON.stringify(list.map((p) => [p.node, p.route]));
    if (shape(next) === shape(this.peers)) return false;
    this.peers = next;
    writeSecret(join(this.natsDir, 'peers.json'), JSON.stringify(this.peers, null, 2) + '\n');
    return true;
  }

  /**
   * Follows the cluster's list of servers (routes to every one of them). On
   * a server that joined, JetStream answers only once the cluster has
   * formed around it: until then this waits and tries again.
   */
  private async joinNatsPeers(): Promise<void> {
    for (;;) {
      if (this.closed) return;
      try {
        this.kv = await openKv(this.bus!.nats.jetstream({ timeout: 5000 }), CLUSTER_BUCKET, { history: 1 });
        await this.kv.put(`nats.${this.name}`, new TextEncoder().encode(JSON.stringify(this.ownPeer())));
        break;
      } catch (error) {
        this.log.info('waiting for the cluster\'s JetStream', { error: (error as Error).message });
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
    const watch = await this.kv.watch({ key: 'nats.>' });
    void (async () => {
      for await (const entry of watch) {
        if (this.closed) break;
        const node = entry.key.slice('nats.'.length);
        let peer: NatsPeer | undefined;
        if (isLive(entry)) {
          try {
            peer = JSON.parse(new TextDecoder().decode(entry.value)) as NatsPeer;
          } catch {
            this.log.warn('unreadable cluster entry, skipped', { key: entry.key });
            continue;
          }
        }
        const next = this.peers.filter((p) => p.node !== node);
        if (peer !== undefined) next.push(peer);
        if (!this.setPeers(next)) continue;
        this.reconfiguring = this.reconfiguring
          .then(() => this.reconfigureNats())
          .catch((error: unknown) => this.log.error('could not bring the cluster\'s routes up to date', { error }));
      }
    })().catch((error: unknown) => this.log.error("stopped following the cluster's servers", { error }));
  }

  private async reconfigureNats(): Promise<void> {
    if (this.closed || !this.nats) return;
    const wasClustered = this.clustered;
    this.writeNatsConfig();
    if (this.clustered && !wasClustered) {
      await this.formCluster();
    } else {
      this.log.info('cluster routes changed: nats-server rereads its configuration', { peers: this.peers.map((p) => p.node).join(',') });
      this.nats.reload();
    }
  }

  /**
   * The first peer has come: this node's standalone server becomes a member
   * of the cluster. nats-server cannot carry its streams over (migrate.ts),
   * so the roles that write JetStream pause, the streams are copied out, the
   * server restarts clustered on an empty store, and the copy goes into the
   * cluster. Routers and DEAs keep serving apps meanwhile.
   */
  private async formCluster(): Promise<void> {
    const peers = this.peers.map((p) => p.node).join(',');
    this.log.info('a second NATS server joined: this one becomes part of the cluster, its JetStream data copied over', { peers });
    const paused = JETSTREAM_WRITERS.filter((role) => this.roles.has(role));
    for (const role of paused) await this.stopRole(role);
    const dumpDir = join(this.natsDir, 'migration');
    const operator = await this.operatorBus(this.localNatsUrl!);
    try {
      const dumped = await dumpStreams(operator.nats, dumpDir, this.log);
      writeSecret(join(dumpDir, 'streams.json'), JSON.stringify(dumped));
    } finally {
      await operator.close();
    }
    await this.nats!.stop(Date.now() + 10_000);
    rmSync(join(this.natsDir, 'jetstream.standalone'), { recursive: true, force: true });
    if (existsSync(join(this.natsDir, 'jetstream'))) renameSync(join(this.natsDir, 'jetstream'), join(this.natsDir, 'jetstream.standalone'));
    this.nats!.start();
    await this.restoreDump();
    rmSync(join(this.natsDir, 'jetstream.standalone'), { recursive: true, force: true });
    for (const role of paused) if (this.state.roles.includes(role)) await this.startRole(role);
    this.log.info('the cluster has formed', { peers });
  }

  /** Replays a dump of formCluster into the cluster: at once, or after a stop half-way, at the next start. */
  private async restoreDump(): Promise<void> {
    const dumpDir = join(this.natsDir, 'migration');
    let dumped: Parameters<typeof restoreStreams>[2];
    try {
      dumped = JSON.parse(readFileSync(join(dumpDir, 'streams.json'), 'utf8')) as Parameters<typeof restoreStreams>[2];
    } catch {
      return;
    }
    const operator = await this.operatorBus(this.localNatsUrl!);
    try {
      await waitForJetStream(operator, () => this.closed, this.log);
      if (this.closed) return;
      await restoreStreams(operator.nats, dumpDir, dumped, this.log);
      removeDump(dumpDir);
    } finally {
      await operator.close();
    }
  }

  private async operatorBus(server: string): Promise<Bus> {
    const secrets = this.secrets!;
    return connectBus({
      servers: server,
      name: `skiff-node-${this.name}-operator`,
      logger: this.log,
      auth: { user: OPERATOR_USER, pass: secrets.users[OPERATOR_USER]!, origin: credentialsFile(this.natsDir, OPERATOR_USER) },
      waitForServer: true,
    });
  }

  // ---- roles ----

  private async startRole(role: NodeRole): Promise<boolean> {
    if (this.roles.has(role)) return true;
    if (!this.options.externalNats && readCredentials(this.natsDir, role) === undefined) {
      if (this.secrets) writeCredentials(this.natsDir, role, this.secrets.users[role]!, this.servers());
      else if (this.bus) await this.requestCredentials(this.bus, [role]);
    }
    const launch = this.launch(role, this);
    if (launch === undefined) return false;
    const env: NodeJS.ProcessEnv = { ...this.options.env, ...launch.env, NATS_URL: this.servers().join(','), SKIFF_NODE: this.name };
    if (!this.options.externalNats) env.SKIFF_NATS_CREDENTIALS = credentialsFile(this.natsDir, role);
    else if (this.options.externalNats.credentialsFile !== undefined) env.SKIFF_NATS_CREDENTIALS = this.options.externalNats.credentialsFile;
    const supervised = new Supervised(role, process.execPath, [BIN, ROLE_COMMANDS[role], ...launch.args], this.log, undefined, env);
    supervised.start();
    this.roles.set(role, supervised);
    return true;
  }

  private async stopRole(role: NodeRole, killAt = Date.now() + 30_000): Promise<void> {
    const supervised = this.roles.get(role);
    if (!supervised) return;
    await supervised.stop(killAt);
    if (supervised.killed) this.killedAny = true;
    this.roles.delete(role);
  }

  info(): NodeInfo {
    return {
      node: this.name,
      host: this.state.advertise,
      assigned: [...this.state.roles],
      running: [...this.roles.entries()].filter(([, s]) => s.running).map(([role]) => role),
      available: [...NODE_ROLES],
      nats_server: this.state.natsServer && !this.options.externalNats,
      ...(this.options.metrics !== undefined ? { metrics: { ...this.options.metrics } } : {}),
    };
  }

  private serveRoleRequests(): void {
    this.bus?.subscribe(nodeRolesSubject(this.name), (msg) => this.onRolesRequest(msg));
  }

  private async onRolesRequest(msg: BusMessage): Promise<void> {
    let request: Partial<NodeRolesRequest>;
    try {
      request = JSON.parse(new TextDecoder().decode(msg.data)) as Partial<NodeRolesRequest>;
    } catch {
      msg.respond({ error: 'the request is not JSON' });
      return;
    }
    if (request.op === 'info') {
      msg.respond(this.info());
      return;
    }
    const role = request.role as NodeRole;
    if ((request.op !== 'add' && request.op !== 'remove') || !(NODE_ROLES as readonly string[]).includes(role)) {
      msg.respond({ error: `unknown role "${request.role}" (roles: ${NODE_ROLES.join(', ')})` });
      return;
    }
    try {
      if (request.op === 'add') {
        await this.addRole(role);
        msg.respond(this.info());
      } else {
        // Answered before the role stops: removing the controller that forwards this request must not lose the answer.
        const stopping = this.removeRole(role);
        msg.respond({ ...this.info(), running: this.info().running.filter((r) => r !== role) });
        await stopping;
      }
    } catch (error) {
      msg.respond({ error: (error as Error).message });
    }
  }

  async addRole(role: NodeRole): Promise<void> {
    if (!this.state.roles.includes(role)) {
      this.state.roles = NODE_ROLES.filter((r) => r === role || this.state.roles.includes(r));
      saveNodeState(this.options.dataDir, this.state);
    }
    this.log.info('role added', { role });
    if (!(await this.startRole(role))) throw new Error(`the ${role} role is not part of this build`);
    this.announce();
  }

  async removeRole(role: NodeRole): Promise<void> {
    this.state.roles = this.state.roles.filter((r) => r !== role);
    saveNodeState(this.options.dataDir, this.state);
    this.log.info('role removed', { role });
    this.announce();
    await this.stopRole(role);
  }

  isRunning(role: NodeRole): boolean {
    return this.roles.has(role);
  }

  /** The token a new node joins with: the cluster's NATS servers and the node user. Only a node that holds the secrets can give one. */
  joinToken(): string | undefined {
    if (!this.secrets || this.options.externalNats) return undefined;
    const servers = [...new Set([this.localNatsUrl!, ...this.peers.map((p) => p.client)])];
    return encodeJoinToken({ servers, user: 'node', pass: this.secrets.users.node! });
  }

  // ---- the Node component ----

  private startAnnouncing(): void {
    if (!this.bus) return;
    this.announcer = new ComponentAnnouncer(
      this.bus,
      {
        type: NODE_COMPONENT_TYPE,
        index: 0,
        uuid: this.uuid,
        host: () => this.state.advertise,
        node: this.name,
        roles: () => [...this.state.roles, ...(this.info().nats_server ? ['nats-server'] : [])],
        startedAt: this.startedAt,
      },
      this.log,
    );
    this.announcer.start();
  }

  private announce(): void {
    if (!this.closed) this.announcer?.announce();
  }

  // ---- stopping ----

  /** Roles in order (the DEA first, with its instances, while the router still listens), then the bus and NATS. */
  async stop(killAt: number): Promise<boolean> {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.announcer?.stop();
    for (const role of STOP_ORDER) await this.stopRole(role, killAt);
    await this.reconfiguring.catch(() => {});
    await this.bus?.close().catch(() => {});
    await this.nats?.stop(killAt);
    return this.killedAny || this.nats?.killed === true;
  }
}

function findNatsServer(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean).concat('/usr/sbin', '/usr/local/bin');
  return dirs.map((dir) => join(dir, 'nats-server')).find((path) => existsSync(path));
}

/** Waits until JetStream answers on `bus` (a joining server's cluster has formed). */
async function waitForJetStream(bus: Bus, stop: () => boolean, log: Logger): Promise<void> {
  for (let attempt = 0; !stop(); attempt++) {
    try {
      const jsm = await bus.nats.jetstreamManager({ timeout: 3000 });
      await jsm.getAccountInfo();
      return;
    } catch (error) {
      if (attempt % 5 === 0) log.info('waiting for the cluster\'s JetStream', { error: (error as Error).message });
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

export function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function waitForPort(host: string, port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await portOpen(host, port)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
