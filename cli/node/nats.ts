// A node's nats-server: its configuration (one NATS user per role with the
// permissions of bus/permissions.ts, the node supervisors' user, an
// operator; no anonymous access; a cluster block once the cluster has more
// than one server) and the secrets behind it, in <data-dir>/nats/ (0700).
//
// - secrets.json: every user's password and the route credentials. The
//   first node generates them (keeping passwords of an older data dir), a
//   node that joins with --nats-server receives them; a node without a
//   nats-server never has them.
// - <user>.json: one role's credentials file ({"servers","user","pass"},
//   what SKIFF_NATS_CREDENTIALS points at), and operator.json.
// - nats-server.conf: written anew on every change, so that a new Skiff
//   version's permissions and the cluster's current routes apply.

import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsCredentialsFile } from '../../bus/nats-options';
import { NATS_ROLES, OPERATOR_USER, RESPONSE_PERMISSION, serverPermissions, type NatsRole } from '../../bus/permissions';
import type { UserPassword } from '../../bus/platform';

export interface NatsUser {
  user: string;
  password: string;
  /** Undefined: every subject (the operator). */
  permissions?: { publish: string[]; subscribe: string[] };
}

export interface ClusterBlock {
  name: string;
  /** Where this server listens for routes. */
  host: string;
  port: number;
  /** The credentials every server's routes use, both ways. */
  route: UserPassword;
  /** nats-route://host:port of every server of the cluster (its own included: nats-server skips itself). */
  routes: string[];
}

/** The cluster's name in nats-server's sense; one per Skiff cluster. */
export const CLUSTER_NAME = 'skiff';

/** nats-server's configuration format; every string is quoted (a bare `$JS...` would be a variable). */
export function natsServerConfig(opts: {
  name?: string;
  host: string;
  port: number;
  /** The address clients and peers are told to use, when the server listens on every address. */
  advertise?: string;
  storeDir?: string;
  users: NatsUser[];
  cluster?: ClusterBlock;
}): string {
  const q = (text: string): string => JSON.stringify(text);
  const list = (items: string[]): string => `[${items.map(q).join(', ')}]`;
  const users = opts.users.map((u) => {
    const fields = [`user: ${q(u.user)}`, `password: ${q(u.password)}`];
    if (u.permissions) {
      fields.push(
        'permissions: {\n' +
          `        publish: { allow: ${list(u.permissions.publish)} }\n` +
          `        subscribe: { allow: ${list(u.permissions.subscribe)} }\n` +
          `        allow_responses: { max: ${RESPONSE_PERMISSION.max}, expires: ${q(RESPONSE_PERMISSION.expires)} }\n` +
          '      }',
      );
    }
    return `    {\n      ${fields.join('\n      ')}\n    }`;
  });
  const cluster = opts.cluster;
  const withCredentials = (route: string): string => route.replace(/^nats-route:\/\//, `nats-route://${encodeURIComponent(cluster!.route.user)}:${encodeURIComponent(cluster!.route.pass)}@`);
  return [
    '# Written by `skiff up`; edits are lost. Passwords are kept in secrets.json beside it.',
    ...(opts.name === undefined ? [] : [`server_name: ${q(opts.name)}`]),
    `listen: ${q(`${opts.host}:${opts.port}`)}`,
    // Otherwise a server on 0.0.0.0 gossips every address it has to clients, and they may take another network.
    ...(opts.advertise === undefined ? [] : [`client_advertise: ${q(`${opts.advertise}:${opts.port}`)}`]),
    ...(opts.storeDir === undefined ? [] : [`jetstream { store_dir: ${q(opts.storeDir)} }`]),
    ...(cluster === undefined
      ? []
      : [
          'cluster {',
          `  name: ${q(cluster.name)}`,
          `  listen: ${q(`${cluster.host}:${cluster.port}`)}`,
          ...(opts.advertise === undefined ? [] : [`  advertise: ${q(`${opts.advertise}:${cluster.port}`)}`]),
          `  authorization { user: ${q(cluster.route.user)}, password: ${q(cluster.route.pass)} }`,
          `  routes: ${list(cluster.routes.map(withCredentials))}`,
          '}',
        ]),
    'authorization {',
    '  users: [',
    users.join('\n'),
    '  ]',
    '}',
    '',
  ].join('\n');
}

/** Everything a nats-server of the cluster needs to admit its users and its peers. */
export interface ClusterSecrets {
  /** user -> password, for every NATS user (roles, node, operator). */
  users: Record<string, string>;
  route: UserPassword;
  cluster: string;
}

const SECRETS_FILE = 'secrets.json';

export function natsDir(dataDir: string): string {
  return join(dataDir, 'nats');
}

/** <data-dir>/nats, 0700: credentials and the JetStream store (the token secret is in it). */
export function ensureNatsDir(dataDir: string): string {
  const dir = natsDir(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return dir;
}

export function writeSecret(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  // The mode of writeFileSync applies only to a file it creates.
  chmodSync(file, 0o600);
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

const newPassword = (): string => randomBytes(24).toString('base64url');

export function loadSecrets(dir: string): ClusterSecrets | undefined {
  const saved = readJson<Partial<ClusterSecrets>>(join(dir, SECRETS_FILE));
  if (saved === undefined || typeof saved.users !== 'object' || saved.users === null || typeof saved.route?.pass !== 'string') return undefined;
  return { users: { ...saved.users }, route: saved.route, cluster: typeof saved.cluster === 'string' ? saved.cluster : CLUSTER_NAME };
}

/**
 * The first node's secrets: those already kept, with every missing user's
 * password generated. A data dir from before secrets.json keeps the
 * passwords of its per-user files, so roles started elsewhere with them
 * still connect.
 */
export function loadOrCreateSecrets(dir: string): ClusterSecrets {
  const secrets = loadSecrets(dir) ?? { users: {}, route: { user: 'route', pass: newPassword() }, cluster: CLUSTER_NAME };
  for (const user of [...NATS_ROLES, OPERATOR_USER]) {
    if (typeof secrets.users[user] === 'string' && secrets.users[user]!.length >= 16) continue;
    const old = readJson<NatsCredentialsFile>(join(dir, `${user}.json`))?.pass;
    secrets.users[user] = typeof old === 'string' && old.length >= 16 ? old : newPassword();
  }
  saveSecrets(dir, secrets);
  return secrets;
}

export function saveSecrets(dir: string, secrets: ClusterSecrets): void {
  writeSecret(join(dir, SECRETS_FILE), JSON.stringify(secrets, null, 2) + '\n');
}

/** The users of a nats-server's configuration: the roles and the node supervisors with their permissions, the operator with all. */
export function serverUsers(secrets: ClusterSecrets): NatsUser[] {
  return Object.entries(secrets.users).map(([user, password]) => ({
    user,
    password,
    permissions: (NATS_ROLES as readonly string[]).includes(user) ? serverPermissions(user as NatsRole) : undefined,
  })).filter((u) => u.permissions !== undefined || u.user === OPERATOR_USER);
}

/** A user's credentials file (what a role's SKIFF_NATS_CREDENTIALS names), 0600. */
export function writeCredentials(dir: string, user: string, pass: string, servers: string[]): string {
  const file = join(dir, `${user}.json`);
  const credentials: NatsCredentialsFile = { servers, user, pass };
  writeSecret(file, JSON.stringify(credentials, null, 2) + '\n');
  return file;
}

export function readCredentials(dir: string, user: string): NatsCredentialsFile | undefined {
  const saved = readJson<NatsCredentialsFile>(join(dir, `${user}.json`));
  return typeof saved?.pass === 'string' && saved.user === user ? saved : undefined;
}

export function credentialsFile(dir: string, user: string): string {
  return join(dir, `${user}.json`);
}

export function serverConfigFile(dir: string): string {
  return join(dir, 'nats-server.conf');
}
