// The passwords of a node's service instances, one 0600 file per instance
// in <data-dir>/services/secrets/ (0700, root's): the redis-server's
// password, and each bound app's PostgreSQL role and password. Generated
// before the backend is told, so that a node stopped half-way finds the
// same password at its next start; removed once the instance is gone.

import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readJson, writePrivate } from './layout';

export interface InstanceSecrets {
  /** redis: the instance's password. */
  password?: string;
  /** postgresql: each bound app's role, by app id. */
  bindings?: Record<string, { username: string; password: string }>;
}

/** 24 random bytes, URL-safe: it goes into URIs as it is. */
export function newPassword(): string {
  return randomBytes(24).toString('base64url');
}

export class SecretStore {
  constructor(private readonly dir: string) {}

  private file(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  read(id: string): InstanceSecrets {
    return readJson<InstanceSecrets>(this.file(id)) ?? {};
  }

  write(id: string, secrets: InstanceSecrets): void {
    writePrivate(this.file(id), JSON.stringify(secrets) + '\n');
  }

  /** The instance's password, generated and kept on first use. */
  password(id: string): string {
    const secrets = this.read(id);
    if (secrets.password === undefined) {
      secrets.password = newPassword();
      this.write(id, secrets);
    }
    return secrets.password;
  }

  /** An app's role and password on the instance, generated and kept on first use. */
  binding(id: string, app: string, username: () => string): { username: string; password: string } {
    const secrets = this.read(id);
    const bindings = (secrets.bindings ??= {});
    if (!Object.prototype.hasOwnProperty.call(bindings, app)) {
      bindings[app] = { username: username(), password: newPassword() };
      this.write(id, secrets);
    }
    return bindings[app]!;
  }

  peekBinding(id: string, app: string): { username: string; password: string } | undefined {
    const bindings = this.read(id).bindings ?? {};
    return Object.prototype.hasOwnProperty.call(bindings, app) ? bindings[app] : undefined;
  }

  forgetBinding(id: string, app: string): void {
    const secrets = this.read(id);
    if (secrets.bindings === undefined || !Object.prototype.hasOwnProperty.call(secrets.bindings, app)) return;
    delete secrets.bindings[app];
    this.write(id, secrets);
  }

  remove(id: string): void {
    rmSync(this.file(id), { force: true });
  }

  /** Ids that have a secrets file. */
  ids(): string[] {
    try {
      return readdirSync(this.dir).filter((name) => name.endsWith('.json')).map((name) => name.slice(0, -'.json'.length));
    } catch {
      return [];
    }
  }
}
