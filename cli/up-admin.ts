// The platform's first admin for `skiff up`: generated on the first start,
// kept in <data-dir>/admin.json (mode 0600) so that later starts reuse it and
// the controller's user store (in JetStream, under the same data dir) agrees.

import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface AdminCredentials {
  email: string;
  password: string;
  /** True only when this call generated them. */
  created: boolean;
}

/** admin@<domain> when the domain looks like one (has a dot), else admin@skiff.local. */
export function adminEmailFor(domain: string): string {
  return /^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(domain) ? `admin@${domain.toLowerCase()}` : 'admin@skiff.local';
}

export function adminFile(dataDir: string): string {
  return join(dataDir, 'admin.json');
}

export function loadOrCreateAdmin(dataDir: string, domain: string): AdminCredentials {
  const path = adminFile(dataDir);
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
  if (text !== undefined) {
    let saved: { email?: unknown; password?: unknown };
    try {
      saved = JSON.parse(text);
    } catch {
      throw new Error(`${path} is not valid JSON; the admin password is in it: fix it, or remove it together with the data dir`);
    }
    if (typeof saved.email !== 'string' || typeof saved.password !== 'string' || saved.email === '' || saved.password === '') {
      throw new Error(`${path} must hold {"email","password"}`);
    }
    return { email: saved.email, password: saved.password, created: false };
  }
  const credentials = { email: adminEmailFor(domain), password: randomBytes(18).toString('base64url') };
  // 'wx': two `skiff up` racing on one data dir must not overwrite each other's password.
  writeFileSync(path, JSON.stringify(credentials, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
  return { ...credentials, created: true };
}

/**
 * Basic-auth credentials of the router's status port (/varz, /routes),
 * kept in <data-dir>/router-status.json (0600) and handed to the router in
 * its environment, so the router never has to log a password it generated.
 */
export function loadOrCreateStatusCredentials(dataDir: string): { user: string; password: string } {
  const path = join(dataDir, 'router-status.json');
  try {
    const saved = JSON.parse(readFileSync(path, 'utf8')) as { user?: unknown; password?: unknown };
    if (typeof saved.user === 'string' && saved.user !== '' && typeof saved.password === 'string' && saved.password.length >= 16) {
      return { user: saved.user, password: saved.password };
    }
  } catch {
    // Missing or damaged: new credentials; nothing else depends on the old ones.
  }
  const credentials = { user: 'router-status', password: randomBytes(18).toString('base64url') };
  writeFileSync(path, JSON.stringify(credentials, null, 2) + '\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  return credentials;
}
