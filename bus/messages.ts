// Message shapes of protocol.md and design.md (Cloud Foundry v1, as Skiff uses them).
// Field names are the wire names, hence snake_case. Times are epoch seconds unless
// the name says otherwise. `droplet` and `app` are app ids (strings in Skiff).
// Validators for each shape are in validate.ts; they return exactly these types,
// with unknown fields dropped and the documented defaults filled in.

export const INSTANCE_STATES = ['STARTING', 'RUNNING', 'STOPPING', 'STOPPED', 'CRASHED', 'DELETED'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

export const EXIT_REASONS = ['STOPPED', 'CRASHED', 'DEA_SHUTDOWN', 'DEA_EVACUATION'] as const;
export type ExitReason = (typeof EXIT_REASONS)[number];

export const LOAD_BALANCING_ALGORITHMS = ['round-robin', 'least-connection'] as const;
export type LoadBalancingAlgorithm = (typeof LOAD_BALANCING_ALGORITHMS)[number];

// ---- router ----

/** `router.register` and `router.unregister`. */
export interface RouterRegister {
  host: string;
  port: number;
  uris: string[];
  app?: string;
  private_instance_id?: string;
  /** Arrives as string or number; validators normalise it to a string. */
  private_instance_index?: string;
  stale_threshold_in_seconds?: number;
  tags?: Record<string, string>;
  /**
   * `loadbalancing` is passed through as sent; the router decides what an
   * unknown algorithm means. Skiff extension: `session_affinity: true` pins
   * each client of the route to one instance with the `__VCAP_ID__` cookie,
   * whether or not the app sets a session cookie of its own; the route has
   * it while any of its endpoints registered with it.
   */
  options?: { loadbalancing?: string; session_affinity?: boolean };
  /** Legacy v1: id of the registering DEA. */
  dea?: string;
  /** Legacy v1: instance index as a number. */
  index?: number;
}
export type RouterUnregister = RouterRegister;

/** `router.start`, also the reply to a `router.greet` request. */
export interface RouterStart {
  id: string;
  hosts: string[];
  minimumRegisterIntervalInSeconds: number;
  pruneThresholdInSeconds: number;
}

/** Upper bounds of the latency buckets of `router.app_stats`, in seconds (+Inf follows); Prometheus' defaults. */
export const APP_LATENCY_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One app's figures in `router.app_stats` (cumulative since the router started). */
export interface AppTraffic {
  /** Status code (as a string key) -> responses. */
  codes: Record<string, number>;
  /** counts: per bucket of `buckets` plus +Inf (not cumulative); sum in seconds. */
  latency: { counts: number[]; sum: number; count: number };
}

/**
 * `router.app_stats`, every 2 s from every router: its per-app counters since
 * it started, summed over its threads. Apps beyond the router's limit come
 * as app `_other`.
 */
export interface RouterAppStats {
  /** The router's component uuid. */
  router: string;
  /** "ip:status port" */
  host: string;
  /** Router start, epoch ms: a new value means the counters started over. */
  started: number;
  /** epoch ms */
  ts: number;
  /** Upper bounds of the latency buckets, seconds. */
  buckets: number[];
  apps: Record<string, AppTraffic>;
}

// ---- DEA ----

export interface Limits {
  /** MB */
  mem: number;
  /** MB */
  disk: number;
  fds: number;
}

/** `dea.advertise` */
export interface DeaAdvertise {
  id: string;
  /** MB */
  available_memory: number;
  runtimes: string[];
  /** Defaults to {} when absent. */
  app_id_to_count: Record<string, number>;
}

/** `dea.start` hello (CF v1 sends id, ip, port, version; only id is required). */
export interface DeaHello {
  id: string;
  ip?: string;
  port?: number;
  version?: string;
}

export interface HeartbeatDroplet {
  droplet: string;
  version: string;
  instance: string;
  index: number;
  state: InstanceState;
  state_timestamp: number;
}

/** `dea.heartbeat` */
export interface DeaHeartbeat {
  dea: string;
  droplets: HeartbeatDroplet[];
}

/** `droplet.exited` */
export interface DropletExited {
  droplet: string;
  version: string;
  instance: string;
  index: number;
  reason: ExitReason;
  /** Absent when the process died of a signal (null on the wire is accepted as absent). */
  exit_status?: number;
  /** Human-readable cause, as in dea_ng: e.g. "out of memory", "app instance exited". */
  exit_description?: string;
  crash_timestamp?: number;
}

/** `dea.discover` request. */
export interface DeaDiscover {
  droplet: string;
  limits: Limits;
  runtime: string;
  sha: string;
}

/** Reply of a DEA with room to `dea.discover`. */
export interface DeaDiscoverReply {
  id: string;
  ip: string;
  port: number;
}

/** `dea.<uuid>.start` */
export interface DeaStartRequest {
  droplet: string;
  index: number;
  name: string;
  /** Defaults to []. */
  uris: string[];
  runtime: string;
  sha1: string;
  version: string;
  limits: Limits;
  /** "KEY=value" strings; defaults to []. */
  env: string[];
  /** Bound service instances (CF v1 shape plus gid); defaults to []. Their credentials are secrets. */
  services: ServiceBinding[];
  /** Defaults to []. */
  users: string[];
  /** Defaults to false. */
  flapping: boolean;
  /** Skiff extension: start command from the stager, when not baked into the droplet. */
  start_command?: string;
  /** Skiff extension: object name of the droplet in the droplet store, when not derivable from sha1. */
  droplet_object?: string;
  /**
   * Skiff extension: the app's own unprivileged uid (and gid, the same
   * number), allocated by the controller from its `--app-uids` range when the
   * app is created and freed when it is deleted. A DEA running as root runs
   * the instance, its `skiff ssh` sessions and its `files` reads as this uid
   * and refuses a start whose uid is outside its own `--app-uids`. Absent
   * (older controllers): the DEA's `--user` (nobody), shared by all such apps.
   */
  uid?: number;
  /**
   * Skiff extension: the app's `session_affinity`, which the DEA passes on
   * as `options.session_affinity` in the instance's `router.register`.
   * Absent: false (the controller sends it only when true).
   */
  session_affinity?: boolean;
}

/**
 * One bound service instance in `dea.<uuid>.start` `services`: what the
 * DEA puts into VCAP_SERVICES (grouped by label, without `gid`) and
 * DATABASE_URL / REDIS_URL (`credentials.uri`, when exactly one service of
 * that label is bound). `credentials` are secrets: never logged, never in
 * an event or an error.
 */
export interface ServiceBinding {
  /** The instance's name as its owner gave it. */
  name: string;
  /** redis, postgresql, filesystem. */
  label: string;
  plan: string;
  /** Defaults to []. */
  tags: string[];
  credentials: Record<string, unknown>;
  /**
   * Skiff extension, filesystem only: a group the app's processes get as a
   * supplementary group, so that they reach the shared directory. The DEA
   * refuses one outside its --service-gids.
   */
  gid?: number;
}

/**
 * `dea.stop`. `droplet` is required (so an empty message can never stop every app
 * on every DEA); each further filter narrows the set of instances stopped.
 */
export interface DeaStop {
  droplet: string;
  version?: string;
  instances?: string[];
  indices?: number[];
  states?: InstanceState[];
}

/** `dea.find.droplet` request: the `dea.stop` filters plus include_stats. */
export interface DeaFindDroplet extends DeaStop {
  include_stats?: boolean;
}

export interface InstanceUsage {
  /** percent of one core */
  cpu: number;
  /** KB, as in CF v1 */
  mem: number;
  /** bytes */
  disk: number;
  /** "2026-11-25 10:00:00 +0000" */
  time: string;
}

export interface InstanceStats {
  name: string;
  host: string;
  port: number;
  uris: string[];
  /** seconds */
  uptime: number;
  /** bytes */
  mem_quota: number;
  /** bytes */
  disk_quota: number;
  fds_quota: number;
  usage: InstanceUsage;
}

/** One reply per matching instance to `dea.find.droplet`. */
export interface DeaFindDropletReply {
  dea: string;
  droplet: string;
  version: string;
  instance: string;
  index: number;
  state: InstanceState;
  state_timestamp: number;
  /** Present when the request asked for include_stats. */
  stats?: InstanceStats;
}

/** `dea.update`: replaces the uris of the app's instances. */
export interface DeaUpdate {
  droplet: string;
  uris: string[];
  /**
   * Skiff extension: the app's new `session_affinity`; running instances
   * register again with it, without a restart. Absent (older
   * controllers): each instance keeps what it had.
   */
  session_affinity?: boolean;
}

// ---- health manager and controller ----

export interface HmStartRequest {
  droplet: string;
  op: 'START';
  last_updated: number;
  version: string;
  indices: number[];
  /** Defaults to false. */
  flapping: boolean;
}

export interface HmStopRequest {
  droplet: string;
  op: 'STOP';
  last_updated: number;
  instances: string[];
}

/** `cloudcontrollers.hm.requests` */
export type HmRequest = HmStartRequest | HmStopRequest;

export interface HmFlappingStatusRequest {
  droplet: string;
  version: string;
  state: 'FLAPPING';
}
export interface HmCrashedStatusRequest {
  droplet: string;
  state: 'CRASHED';
}
/** `healthmanager.status` request. */
export type HealthmanagerStatusRequest = HmFlappingStatusRequest | HmCrashedStatusRequest;

export interface HmFlappingStatusReply {
  indices: Array<{ index: number; since: number }>;
}
export interface HmCrashedStatusReply {
  instances: Array<{ instance: string; since: number }>;
}
export type HealthmanagerStatusReply = HmFlappingStatusReply | HmCrashedStatusReply;

export interface DropletVersion {
  droplet: string;
  version: string;
}
/** `healthmanager.health` request. */
export interface HealthmanagerHealthRequest {
  droplets: DropletVersion[];
}
/** One reply per droplet to `healthmanager.health`. */
export interface HealthmanagerHealthReply {
  droplet: string;
  version: string;
  /** number of running instances */
  healthy: number;
}

/** `healthmanager.start` hello: carries nothing that anyone relies on. */
export type HealthmanagerHello = Record<string, never>;

/** `droplet.updated` */
export interface DropletUpdated {
  droplet: string;
}

// ---- stager ----

export interface StagingManifest {
  command: string | null;
  env: Record<string, string>;
}

/** `vcap.stager.<queue>` request. */
export interface StagerRequest {
  app: string;
  bits: string;
  sha: string;
  /** Defaults to {command: null, env: {}}. */
  manifest: StagingManifest;
}

export interface StagerSuccess {
  droplet: string;
  sha1: string;
  runtime: string;
  framework: string;
  start_command: string;
  /** Defaults to "". */
  log: string;
}
export interface StagerFailure {
  error: string;
  /** Defaults to "". */
  log: string;
}
export type StagerReply = StagerSuccess | StagerFailure;

export function isStagerFailure(reply: StagerReply): reply is StagerFailure {
  return 'error' in reply;
}

// ---- components ----

/**
 * `vcap.component.announce`, and the reply to `vcap.component.discover`.
 * It may carry the credentials of a status or metrics port: never log it.
 */
export interface ComponentAnnounce {
  /** Router, CloudController, Stager, DEA, HealthManager; Node for a node supervisor. */
  type: string;
  index: number;
  uuid: string;
  /** Where others reach the component: "address:port" where it listens, else the host name. */
  host: string;
  /** Name of the node the component runs on (`--node`); absent from older components. */
  node?: string;
  /** Basic-auth user and password of the status port (the router) or the metrics port (the others), as CF v1 components announced theirs. */
  credentials?: [string, string];
  /** "host:port" where the component serves Prometheus' GET /metrics (with those credentials). */
  metrics?: string;
  /** A Node's assigned roles. */
  roles?: string[];
  /** ISO 8601 */
  start: string;
  /** "0d:0h:5m:3s" */
  uptime: string;
}

// ---- usage ----

/** One instance in `dea.stats`. */
export interface DeaStatsInstance {
  app: string;
  version: string;
  instance: string;
  index: number;
  state: InstanceState;
  /** percent of one core */
  cpu: number;
  mem_kb: number;
  disk_bytes: number;
}

/** `dea.stats`, every 5 s from every DEA: its memory and its instances' usage. */
export interface DeaStats {
  dea: string;
  node?: string;
  /** epoch ms */
  ts: number;
  memory: { total_mb: number; reserved_mb: number };
  instances: DeaStatsInstance[];
}
