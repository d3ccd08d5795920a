// A nats-server with the authorization `skiff up` writes (one user per role
// with the permissions of bus/permissions.ts, and an operator), for tests
// that check what each role may and may not say.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NATS_ROLES, OPERATOR_USER, serverPermissions, type NatsRole } from '../bus/permissions';
import { natsServerConfig, type NatsUser } from '../cli/node/nats';
import { startNats, type NatsServer, type TeardownHost } from './harness';

export interface SecuredNats {
  server: NatsServer;
  /** Password of each role's user and of the operator. */
  password: Record<NatsRole | typeof OPERATOR_USER, string>;
  /** A 0600 credentials file for the user, as `skiff up` writes them. */
  credentialsFile(user: NatsRole | typeof OPERATOR_USER, password?: string): string;
}

export async function startSecuredNats(t: TeardownHost): Promise<SecuredNats> {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-secured-nats-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const password = {} as SecuredNats['password'];
  const users: NatsUser[] = [];
  for (const user of [...NATS_ROLES, OPERATOR_USER] as const) {
    password[user] = `pw-${user}-${Math.random().toString(36).slice(2)}`;
    users.push({ user, password: password[user], permissions: user === OPERATOR_USER ? undefined : serverPermissions(user) });
  }
  const configFile = join(dir, 'nats-server.conf');
  // Port and JetStream store come from startNats's flags.
  writeFileSync(configFile, natsServerConfig({ host: '127.0.0.1', port: 4222, users }), { mode: 0o600 });
  const server = await startNats(t, { args: ['-c', configFile] });
  let files = 0;
  return {
    server,
    password,
    credentialsFile(user, pass = password[user]) {
      const file = join(dir, `${user}-${files++}.json`);
      writeFileSync(file, JSON.stringify({ servers: [server.url], user, pass }), { mode: 0o600 });
      return file;
    },
  };
}
