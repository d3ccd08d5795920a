// Names and formats shared by the controller, stager, DEA, health manager and
// CLI beyond the CF messages of protocol.md. One place, so that no role
// spells a bucket or a subject by hand.

import type { AutoscalePolicy } from './autoscale';

/** JetStream object stores. */
export const ObjectStores = {
  /** Uploaded app packages (zip or tar.gz as the user sent them); object name: bitsObjectName(). */
  bits: 'skiff_bits',
  /** Staged droplets (see DROPLET_LAYOUT); object name: the droplet's sha1, hex. */
  droplets: 'skiff_droplets',
} as const;

export function bitsObjectName(appId: string, sha256: string): string {
  return `${appId}.${sha256}`;
}

/**
 * A droplet is a gzipped tar with:
 *   droplet.json  {"runtime","framework","start_command"} (DropletInfo)
 *   app/          the staged app (dependencies installed), the start
 *                 command's working directory
 * The DEA unpacks it into the instance directory and runs
 * `/bin/sh -c <start_command>` in `app/`.
 */
export const DROPLET_INFO_FILE = 'droplet.json';
export const DROPLET_APP_DIR = 'app';

export interface DropletInfo {
  runtime: string;
  framework: string;
  start_command: string;
}

/**
 * Staging log lines, published by the stager while it works on a job, so
 * that the controller can stream them to `skiff push`. Payload: raw text
 * (one or more lines). The stager's reply still carries the whole log.
 */
export function stagingLogSubject(appId: string): string {
  return `staging.${appId}.log`;
}

/** Runtimes a DEA can offer (dea.advertise `runtimes`). */
export const RUNTIMES = ['node', 'python', 'static'] as const;

/** The `<queue>` of `vcap.stager.<queue>` that stagers serve and controllers use by default. */
export const DEFAULT_STAGER_QUEUE = 'default';
/** Queue group stagers join on that subject, so that one stager takes each job. */
export const STAGER_QUEUE_GROUP = 'stagers';

/**
 * Files of an instance, served by the DEA that runs (or ran) it, for the
 * controller's `/apps/:name/instances/:index/files/*path`, `skiff files` and
 * `skiff logs`. Request: FilesRequest; reply: FilesReply. Replies stay under
 * NATS's 1 MB payload limit: a file is read in slices of at most
 * FILES_MAX_SLICE bytes (ask again from `offset + length`).
 */
export function deaFilesSubject(deaId: string): string {
  return `dea.${deaId}.files`;
}
export const FILES_MAX_SLICE = 512 * 1024;

export interface FilesRequest {
  droplet: string;
  instance: string;
  /** Relative to the instance directory ("" or "/" is its root); never escapes it. */
  path: string;
  /** For files: where to start; negative counts from the end (tail). Default 0. */
  offset?: number;
  /** For files: at most this many bytes (capped at FILES_MAX_SLICE). */
  length?: number;
}
export type FilesReply =
  | { type: 'directory'; path: string; entries: Array<{ name: string; type: 'file' | 'directory'; size: number }> }
  | { type: 'file'; path: string; size: number; offset: number; data_base64: string }
  | { error: string; code: 'not_found' | 'bad_path' | 'unknown_instance' };

/**
 * Desired state of apps: JetStream KV bucket written by the controller, key =
 * app id, value = the controller's app record as JSON. Other roles (the
 * health manager) may read it; only the controller writes it.
 */
export const APPS_BUCKET = 'skiff_apps';

/** The health managers' own bucket (their lease); only health managers use it. */
export const HEALTH_BUCKET = 'skiff_health';

/**
 * The fields of an app record that roles other than the controller rely on;
 * the record holds more, which readers ignore.
 */
export interface AppDesiredState {
  id: string;
  name: string;
  state: 'STARTED' | 'STOPPED';
  instances: number;
  /** Sha1 of the current droplet; null before the first staging. */
  droplet: string | null;
  /** Bumped on each start, restart and new droplet. */
  run_count: number;
  /** Epoch seconds of the last change of desired state. */
  last_updated: number;
  /** The app's autoscale policy (bus/autoscale.ts); absent when off. */
  autoscale?: AutoscalePolicy;
}

/** The version instances of the app's current desired state run: `<droplet sha1>-<run count>`. */
export function desiredVersion(app: Pick<AppDesiredState, 'droplet' | 'run_count'>): string | null {
  return app.droplet === null ? null : `${app.droplet}-${app.run_count}`;
}

/**
 * `skiff ssh`: a command run in an instance's directory and environment, as
 * the app's user, its output streamed back. The controller asks the DEA that
 * holds the instance to start a session (deaSshSubject: SshRequest ->
 * SshReply); from then on the session's bytes travel on its own subjects
 * (sshSubjects), named by a random session id (a UUID):
 *   ssh.<session>.out   DEA -> controller: one byte channel (SSH_CHANNEL) + data, at most SSH_MAX_CHUNK data bytes
 *   ssh.<session>.exit  DEA -> controller: SshExit (JSON), after the last output; the session is over
 *   ssh.<session>.in    controller -> DEA: stdin bytes; an empty message is EOF
 *   ssh.<session>.ctl   controller -> DEA: SshControl (JSON); `ping` is a request answered {"ok":true} while the session lives
 * A session ends when its process exits, on `kill`, when the instance stops,
 * or when the DEA stops. Its output is paused (`pause`/`resume`) while the
 * user's connection cannot take more, so a fast command waits for a slow user.
 */
export function deaSshSubject(deaId: string): string {
  return `dea.${deaId}.ssh`;
}

export function sshSubjects(session: string): { out: string; exit: string; in: string; ctl: string } {
  return { out: `ssh.${session}.out`, exit: `ssh.${session}.exit`, in: `ssh.${session}.in`, ctl: `ssh.${session}.ctl` };
}

/** Session ids go into subjects: only a UUID's characters, never `.`, `*` or `>`. */
export const SSH_SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const SSH_CHANNEL = { stdout: 1, stderr: 2 } as const;
export type SshChannel = (typeof SSH_CHANNEL)[keyof typeof SSH_CHANNEL];
/** Data bytes per output message (and per WebSocket frame). */
export const SSH_MAX_CHUNK = 64 * 1024;
/** Sessions one instance may have at a time; more are refused (`too_many_sessions`). */
export const SSH_MAX_SESSIONS_PER_INSTANCE = 4;
/** Longest command line accepted. */
export const SSH_MAX_COMMAND = 16 * 1024;
/** Terminal sizes outside this are refused. */
export const SSH_MAX_TERMINAL = 1000;

export interface SshRequest {
  droplet: string;
  instance: string;
  session: string;
  /** A shell command line, run by `/bin/sh -c`; "" runs an interactive `/bin/sh`. */
  command: string;
  /** Run on a pseudo-terminal (stdout and stderr merge into channel 1). */
  tty: boolean;
  cols: number;
  rows: number;
  /** The user's TERM, for a tty session (default xterm). */
  term?: string;
}
export type SshReply =
  | { ok: true }
  | { error: string; code: 'unknown_instance' | 'too_many_sessions' | 'bad_request' | 'failed' };

/** `exit_status`: the command's exit code, or 128 + the signal number when a signal ended it. `error`: why it could not run. */
export interface SshExit {
  exit_status: number;
  signal?: string;
  error?: string;
}

export type SshControl =
  | { resize: [cols: number, rows: number] }
  | { kill: true }
  | { pause: true }
  | { resume: true }
  | { ping: true };

/**
 * Published by the health manager that acts (the lease holder) when it gives
 * up on an index of an app version: from crash `giveup_crash_number` + 1
 * inside the flapping window it asks for no more restarts until the app
 * changes. Not a CF v1 message: one controller (queue group `cc`) records it
 * as the app event `gave_up`, so that `skiff events` says why nothing restarts.
 */
export const HM_GIVEUP_SUBJECT = 'healthmanager.giveup';

export interface HmGiveUp {
  droplet: string;
  version: string;
  index: number;
  /** Crashes counted in the flapping window when it gave up. */
  crashes: number;
}

/**
 * What `POST /apps` and `PUT /apps/:name` accept for one app (control/API.md).
 * The CLI checks its flags and manifest against the same numbers, so a value
 * no controller would take is a usage error before anything is sent.
 */
export const AppBounds = {
  maxInstances: 100,
  minMemoryMb: 16,
  maxMemoryMb: 65536,
} as const;

// ---- the cluster (design.md, Cluster and operations) ----

/**
 * A node of the cluster: `skiff up` on one host, the supervisor of the roles
 * it is given. Its name is one NATS subject token and a nats-server
 * server_name, so letters, digits and '-' only.
 */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/** The roles a node can be given (`skiff up --roles`, `skiff role add`). */
export const NODE_ROLES = ['router', 'controller', 'stager', 'dea', 'health', 'services'] as const;
export type NodeRole = (typeof NODE_ROLES)[number];

/**
 * KV bucket of the cluster's shape, written by the node supervisors:
 * `nats.<node>` -> NatsPeer for every node that runs a nats-server (the
 * servers route to each other from it), `node.<node>` -> NodeRecord.
 */
export const CLUSTER_BUCKET = 'skiff_cluster';

export interface NatsPeer {
  node: string;
  /** nats://host:port clients use. */
  client: string;
  /** nats-route://host:port the other servers route to (no credentials). */
  route: string;
  /** Epoch seconds. */
  updated: number;
}

/**
 * Request (node user -> supervisors that hold the cluster's secrets, queue
 * group NODE_CREDENTIALS_QUEUE): NodeCredentialsRequest; reply
 * NodeCredentialsReply. A joining node learns here the NATS credentials of
 * the roles it runs, and, when it runs a nats-server, the server's whole
 * authorization (every user, the route credentials).
 */
export const NODE_CREDENTIALS_SUBJECT = 'skiff.node.credentials';
export const NODE_CREDENTIALS_QUEUE = 'credentials';

export interface NodeCredentialsRequest {
  node: string;
  roles: NodeRole[];
  /** True for a node that runs a nats-server of the cluster. */
  nats_server: boolean;
}

export interface UserPassword {
  user: string;
  pass: string;
}

export type NodeCredentialsReply =
  | {
      credentials: Partial<Record<NodeRole, UserPassword>>;
      /** Only with nats_server: what the node's nats-server needs. */
      nats?: { users: UserPassword[]; route: UserPassword; cluster: string };
    }
  | { error: string };

/** Request to a node's supervisor: `{"op":"add"|"remove","role"}` or `{"op":"info"}`; reply NodeInfo or {"error"}. */
export function nodeRolesSubject(node: string): string {
  return `skiff.node.${node}.roles`;
}

export interface NodeRolesRequest {
  op: 'add' | 'remove' | 'info';
  role?: string;
}

export interface NodeInfo {
  node: string;
  host: string;
  /** Roles given to the node (remembered across restarts). */
  assigned: NodeRole[];
  /** Of those, the ones whose process runs now. */
  running: NodeRole[];
  /** Roles this build can run. */
  available: NodeRole[];
  /** The node runs a nats-server of the cluster. */
  nats_server: boolean;
  /** Where each role serves GET /metrics ("host:port", basic auth): the router on its status port. */
  metrics?: Partial<Record<NodeRole, string>>;
}

// ---- data services (design.md, Data services) ----
//
// Every node given the `services` role runs one `skiff services` process:
// the node (the backends), the provisioner and the gateway of all three
// services on its host. The controller asks over NATS (request/reply, JSON);
// every reply is the shape named below or a ServiceError.

/** The offerings, as `skiff marketplace` lists them and VCAP_SERVICES labels them. */
export const SERVICE_LABELS = ['redis', 'postgresql', 'filesystem'] as const;
export type ServiceLabel = (typeof SERVICE_LABELS)[number];

/** Every offering has these plans; their limits are the services role's (services/offerings.ts). */
export const SERVICE_PLANS = ['free', 'large'] as const;
export type ServicePlanName = (typeof SERVICE_PLANS)[number];

/**
 * Service instance ids, chosen by the controller (a UUID fits). They name a
 * directory, a PostgreSQL database and role (63 bytes at most, with a prefix
 * and a suffix) and a KV key, hence lowercase letters, digits, '-' and '_',
 * at most 40 of them.
 */
export const SERVICE_INSTANCE_ID = /^[a-z0-9][a-z0-9_-]{0,39}$/;

/**
 * KV bucket of the services nodes: instance id -> the node's record of it
 * (service, plan, node, state, bindings; never a password). Only services
 * nodes write it; the controller may read it.
 */
export const SERVICES_BUCKET = 'skiff_services';

/** Queue group of `services.provision` (and `services.offerings`): one services node takes each request. */
export const SERVICES_QUEUE = 'services';

export const ServiceSubjects = {
  /** Request: {} -> ServiceOfferingsReply. */
  offerings: 'services.offerings',
  /** Request in the queue group: ServiceProvisionRequest -> ServiceProvisionReply. */
  provision: 'services.provision',
  /** Request to the node that holds the instance: ServiceDeprovisionRequest -> ServiceOk (an unknown id is ok). */
  deprovision: (node: string) => `services.${node}.deprovision`,
  /** ServiceBindRequest -> ServiceBindReply (the same app gets the same credentials). */
  bind: (node: string) => `services.${node}.bind`,
  /** ServiceUnbindRequest -> ServiceOk (an unknown binding is ok). */
  unbind: (node: string) => `services.${node}.unbind`,
  /** ServiceStatusRequest -> ServiceStatusReply. */
  status: (node: string) => `services.${node}.status`,
} as const;

export interface ServicePlanInfo {
  name: string;
  description: string;
}

export interface ServiceOffering {
  label: string;
  description: string;
  plans: ServicePlanInfo[];
}

export interface ServiceOfferingsReply {
  services: ServiceOffering[];
}

export interface ServiceProvisionRequest {
  /** Chosen by the controller (SERVICE_INSTANCE_ID); provisioning is idempotent by it. */
  id: string;
  service: string;
  plan: string;
  /** The instance's name as its owner gave it (`skiff create-service SERVICE NAME`). */
  name: string;
  /** The owner's email. */
  owner: string;
}

export interface ServiceProvisionReply {
  ok: true;
  /** The node that holds the instance: deprovision, bind, unbind and status go to its subjects. */
  node: string;
}

export interface ServiceDeprovisionRequest {
  id: string;
}

export interface ServiceBindRequest {
  id: string;
  /** The app's id. */
  app: string;
  /** The app's uid (DeaStartRequest.uid), when the controller gave it one. */
  app_uid?: number;
}

export interface RedisCredentials {
  host: string;
  hostname: string;
  port: number;
  password: string;
  /** redis://:PASSWORD@HOST:PORT */
  uri: string;
}

export interface PostgresqlCredentials {
  host: string;
  hostname: string;
  port: number;
  /** The database. */
  name: string;
  username: string;
  user: string;
  password: string;
  /** postgres://USER:PASSWORD@HOST:PORT/NAME */
  uri: string;
}

export interface FilesystemCredentials {
  /** The shared directory, an absolute path on the node's host. */
  dir: string;
}

export type ServiceCredentials = RedisCredentials | PostgresqlCredentials | FilesystemCredentials;

/** Credentials are secrets: never logged, never in an event or an error. */
export interface ServiceBindReply {
  credentials: ServiceCredentials;
  /**
   * Filesystem only: the group that owns the shared directory. The DEA runs
   * the app's processes with it as a supplementary group (only gids inside
   * its --service-gids range).
   */
  gid?: number;
}

export interface ServiceUnbindRequest {
  id: string;
  app: string;
}

export interface ServiceStatusRequest {
  ids: string[];
}

export interface ServiceInstanceHealth {
  id: string;
  healthy: boolean;
  /** One line for `skiff services`, e.g. "running, 1.2 MB of 64 MB". */
  detail: string;
}

export interface ServiceStatusReply {
  instances: ServiceInstanceHealth[];
}

export interface ServiceOk {
  ok: true;
}

export const SERVICE_ERROR_CODES = [
  /** The request is malformed (a field is missing or wrong). */
  'bad_request',
  /** No such offering, or no such plan. */
  'unknown_service',
  'unknown_plan',
  /** No such service instance (bind), or it is not this node's. */
  'not_found',
  /** The instance is being provisioned or deprovisioned; ask again shortly. */
  'in_progress',
  /** This node cannot run the service (its backend is not installed). */
  'unavailable',
  /** The backend failed; the error says how, without a secret. */
  'failed',
] as const;
export type ServiceErrorCode = (typeof SERVICE_ERROR_CODES)[number];

export interface ServiceError {
  /** One clear line, never a credential. */
  error: string;
  code: ServiceErrorCode;
}

export function isServiceError(reply: unknown): reply is ServiceError {
  return typeof reply === 'object' && reply !== null && typeof (reply as { error?: unknown }).error === 'string';
}
