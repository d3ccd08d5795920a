// The bus of a `skiff up` platform: a nats-server configuration with one
// NATS user per role (bus/permissions.ts) and an operator, no anonymous
// access, and a credentials file per user. Everything lives in
// <data-dir>/nats/ (0700): the passwords are generated on the first start
// and kept, the configuration is written anew on every start so that a new
// Skiff version's permissions apply.

import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsCredentialsFile } from '../bus/nats-options';
import { NATS_ROLES, OPERATOR_USER, RESPONSE_PERMISSION, serverPermissions, type NatsRole } from '../bus/permissions';

export interface NatsUser {
  user: string;
  password: string;
  /** Undefined: every subject (the operator). */
  permissions?: { publish: string[]; subscribe: string[] };
}

export interface PlatformNats {
  dir: string;
  configFile: string;
  url: string;
  /** The credentials file a role is started with (SKIFF_NATS_CREDENTIALS). */
  credentialsFile(role: NatsRole): string;
  operatorFile: string;
}

/** nats-server's configuration format; every string is quoted (a bare `$JS...` would be a variable). */
export function natsServerConfig(opts: { host: string; port: number; storeDir?: string; users: NatsUser[] }): string {
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
  return [
    '# Written by `skiff up` on every start; edits are lost. Passwords are kept in the *.json files beside it.',
    `listen: ${q(`${opts.host}:${opts.port}`)}`,
    ...(opts.storeDir === undefined ? [] : [`jetstream { store_dir: ${q(opts.storeDir)} }`]),
    'authorization {',
    '  users: [',
    users.join('\n'),
    '  ]',
    '}',
    '',
  ].join('\n');
}

function loadOrCreatePassword(file: string): string {
  try {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as NatsCredentialsFile;
    if (typeof saved.pass === 'string' && saved.pass.length >= 16) return saved.pass;
  } catch {
    // Missing or unreadable: a new password, written below.
  }
  return randomBytes(24).toString('base64url');
}

function writeSecret(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  // The mode of writeFileSync applies only to a file it creates.
  chmodSync(file, 0o600);
}

/** Writes <data-dir>/nats/: nats-server.conf and one credentials file per role and for the operator. */
export function preparePlatformNats(dataDir: string, host: string, port: number): PlatformNats {
  const dir = join(dataDir, 'nats');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const url = `nats://${host}:${port}`;
  const fileOf = (user: string): string => join(dir, `${user}.json`);
  const users: NatsUser[] = [];
  for (const user of [...NATS_ROLES, OPERATOR_USER]) {
    const file = fileOf(user);
    const password = loadOrCreatePassword(file);
    const credentials: NatsCredentialsFile = { servers: [url], user, pass: password };
    writeSecret(file, JSON.stringify(credentials, null, 2) + '\n');
    users.push({ user, password, permissions: user === OPERATOR_USER ? undefined : serverPermissions(user as NatsRole) });
  }
  const configFile = join(dir, 'nats-server.conf');
  writeSecret(configFile, natsServerConfig({ host, port, storeDir: dir, users }));
  return { dir, configFile, url, credentialsFile: (role) => fileOf(role), operatorFile: fileOf(OPERATOR_USER) };
}
