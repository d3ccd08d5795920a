// The environment of an app instance, built from nothing: the DEA's own
// environment (NATS credentials, admin passwords, ...) must never reach an app.

import { join } from 'node:path';
import type { Limits } from '../bus/messages';
import { DROPLET_APP_DIR } from '../bus/platform';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_LANG = 'C.UTF-8';

export interface InstanceEnvInput {
  appId: string;
  name: string;
  instanceId: string;
  index: number;
  version: string;
  uris: string[];
  limits: Limits;
  host: string;
  port: number;
  /** Epoch seconds. */
  startedAt: number;
  instanceDir: string;
  tmpDir: string;
  /** "KEY=value" strings from the start message. */
  appEnv: string[];
  /** The start message's bound services (bus/platform.ts BoundService; credentials inside: never logged). */
  services: unknown[];
}

/** Variables the platform defines and an app's own env cannot override: the app relies on them being true. */
const PLATFORM_OWNED = new Set([
  'PORT', 'VCAP_APP_PORT', 'VCAP_APP_HOST', 'VCAP_APPLICATION', 'VCAP_SERVICES', 'HOME', 'TMPDIR', 'CF_INSTANCE_INDEX',
]);

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface BuiltEnv {
  env: Record<string, string>;
  /** App env entries skipped, by name (or position when nameless); never their values. */
  skipped: string[];
}

export function buildInstanceEnv(input: InstanceEnvInput): BuiltEnv {
  const startedAt = new Date(input.startedAt * 1000);
  const vcapApplication = {
    instance_id: input.instanceId,
    instance_index: input.index,
    name: input.name,
    uris: input.uris,
    version: input.version,
    limits: input.limits,
    host: input.host,
    port: input.port,
    started_at: formatCfTime(startedAt),
    started_at_timestamp: input.startedAt,
    start: formatCfTime(startedAt),
    state_timestamp: input.startedAt,
    application_id: input.appId,
    application_name: input.name,
    application_uris: input.uris,
    application_version: input.version,
  };
  const env: Record<string, string> = {
    // The app's own tools first, as npm gives them to a package's scripts:
    // a start script run without npm (`next start`) finds them the same way.
    PATH: `${join(input.instanceDir, DROPLET_APP_DIR, 'node_modules', '.bin')}:${DEFAULT_PATH}`,
    LANG: DEFAULT_LANG,
    // Where npm still runs in an instance (a Procfile's `npm start`, a
    // prestart's `npm run build`), its update notice stays out of the app's logs.
    npm_config_update_notifier: 'false',
  };
  const skipped: string[] = [];
  input.appEnv.forEach((entry, position) => {
    const eq = entry.indexOf('=');
    const key = eq > 0 ? entry.slice(0, eq) : '';
    if (!ENV_NAME.test(key) || PLATFORM_OWNED.has(key)) {
      skipped.push(ENV_NAME.test(key) ? key : `#${position}`);
      return;
    }
    env[key] = entry.slice(eq + 1);
  });
  Object.assign(env, {
    PORT: String(input.port),
    VCAP_APP_PORT: String(input.port),
    VCAP_APP_HOST: input.host,
    VCAP_APPLICATION: JSON.stringify(vcapApplication),
    VCAP_SERVICES: JSON.stringify(groupServices(input.services)),
    HOME: input.instanceDir,
    TMPDIR: input.tmpDir,
    CF_INSTANCE_INDEX: String(input.index),
  });
  // After the app's own env: a bound database is the one the app must use.
  Object.assign(env, serviceUrls(input.services));
  return { env, skipped };
}

/**
 * VCAP_SERVICES groups bound services by their label, as Cloud Foundry v1
 * did. `gid` is the DEA's business (the process's groups), not the app's.
 */
export function groupServices(services: unknown[]): Record<string, unknown[]> {
  const grouped: Record<string, unknown[]> = {};
  for (const service of services) {
    const label = labelOf(service) ?? 'user-provided';
    let shown = service;
    if (isObject(service) && 'gid' in service) {
      const { gid: _gid, ...rest } = service;
      shown = rest;
    }
    (grouped[label] ??= []).push(shown);
  }
  return grouped;
}

/** Heroku's and Stackato's variables: the uri of the one bound service of that label. */
export const SERVICE_URL_VARIABLES: Readonly<Record<string, string>> = { postgresql: 'DATABASE_URL', redis: 'REDIS_URL' };

/** DATABASE_URL / REDIS_URL when exactly one service of the label is bound; with two, the app must choose from VCAP_SERVICES. */
export function serviceUrls(services: unknown[]): Record<string, string> {
  const urls: Record<string, string> = {};
  for (const [label, variable] of Object.entries(SERVICE_URL_VARIABLES)) {
    const bound = services.filter((service) => labelOf(service) === label);
    if (bound.length !== 1) continue;
    const credentials = (bound[0] as { credentials?: unknown }).credentials;
    const uri = isObject(credentials) ? credentials.uri : undefined;
    if (typeof uri === 'string' && uri !== '') urls[variable] = uri;
  }
  return urls;
}

function labelOf(service: unknown): string | undefined {
  return isObject(service) && typeof service.label === 'string' ? service.label : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** "2026-11-25 10:00:00 +0000", the time format of CF v1 messages. */
export function formatCfTime(date: Date): string {
  return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' +0000');
}
