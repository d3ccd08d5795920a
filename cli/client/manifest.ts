// manifest.yml, Cloud Foundry's fields: name, instances, memory, command, env,
// routes (`- route: host.domain[/path]`) or host/hosts + domain/domains,
// services (names of service instances to bind, which must exist), and
// Skiff's session_affinity (true: the router pins clients to instances) and
// autoscale ({min, max, target_rps, ...}: `skiff autoscale`). A
// top-level `applications:` list gives one entry per app; top-level fields
// are defaults its entries inherit (as in CF). Skiff pushes one app: the
// first entry, or the one named by --name.

import { parse as parseYaml, YAMLParseError } from 'yaml';
import { checkAutoscalePolicy, type AutoscalePolicy } from '../../bus/autoscale';
import { AppBounds } from '../../bus/platform';
import { parseMemoryMb } from './size';
import { checkUri } from './args';

export interface AppManifest {
  name?: string;
  instances?: number;
  memoryMb?: number;
  command?: string;
  env?: Record<string, string>;
  /** Routes as the API wants them: "host.domain" or "host.domain/path". */
  uris?: string[];
  /** `host:`/`hosts:` without a domain: routes on the platform's default domain. */
  hosts?: string[];
  sessionAffinity?: boolean;
  /** Service instances to bind, by name (as cf's `services:`). */
  services?: string[];
  /** `autoscale: {min, max, target_rps, target_p99_ms, target_cpu}` (bus/autoscale.ts). */
  autoscale?: AutoscalePolicy;
}

export class ManifestError extends Error {
  override name = 'ManifestError';
}

const APP_FIELDS = ['name', 'instances', 'memory', 'command', 'env', 'routes', 'host', 'hosts', 'domain', 'domains', 'session_affinity', 'services', 'autoscale'] as const;
const SERVICE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * Parses manifest text; `wantedName` picks an entry of `applications:`.
 * Keys Skiff does not know are ignored, and named through `warn` (as cf
 * does): a typo like `intances:` must not pass silently.
 */
export function parseManifest(text: string, wantedName?: string, warn: (message: string) => void = () => {}): AppManifest {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new ManifestError(describeYamlError(error));
  }
  if (doc === null || doc === undefined) return {};
  if (!isObject(doc)) throw new ManifestError('manifest.yml must be a mapping (name: ..., or applications: [...])');

  warnUnknownKeys(doc, ['applications', ...APP_FIELDS], '', warn);
  let entry: Record<string, unknown> = {};
  for (const field of APP_FIELDS) if (field in doc) entry[field] = doc[field];
  if ('applications' in doc) {
    const apps = doc.applications;
    if (!Array.isArray(apps) || apps.length === 0 || !apps.every(isObject)) {
      throw new ManifestError('manifest.yml: applications must be a non-empty list of mappings');
    }
    let chosen = apps[0] as Record<string, unknown>;
    if (wantedName !== undefined) {
      const named = (apps as Array<Record<string, unknown>>).find((app) => app.name === wantedName);
      // With several apps, --name must pick one of them; with one, --name renames it.
      if (named) chosen = named;
      else if (apps.length > 1) throw new ManifestError(`manifest.yml has no application named "${wantedName}"`);
    }
    warnUnknownKeys(chosen, APP_FIELDS, `applications[${apps.indexOf(chosen)}]: `, warn);
    entry = { ...entry, ...chosen };
  }
  return normalise(entry);
}

function warnUnknownKeys(mapping: Record<string, unknown>, known: readonly string[], where: string, warn: (message: string) => void): void {
  for (const key of Object.keys(mapping)) if (!known.includes(key)) warn(`manifest.yml: ${where}unknown key ${JSON.stringify(key)} (ignored)`);
}

/**
 * The yaml package's message ends in a code frame after a colon; the first
 * line says where, the frame shows it. Both are kept, the frame indented
 * under the one-line error.
 */
function describeYamlError(error: unknown): string {
  if (!(error instanceof YAMLParseError)) return `manifest.yml is not valid YAML: ${(error as Error).message.split('\n')[0]}`;
  const [head = '', ...frame] = error.message.split('\n');
  const where = error.linePos?.[0];
  const reason = head.replace(/ at line \d+, column \d+:?$/, '');
  const excerpt = frame.filter((line, i) => line.trim() !== '' || (i > 0 && i < frame.length - 1)).map((line) => `  ${line}`.trimEnd());
  const position = where === undefined ? '' : ` (line ${where.line}, column ${where.col})`;
  return [`manifest.yml is not valid YAML${position}: ${reason}`, ...excerpt].join('\n').trimEnd();
}

function normalise(entry: Record<string, unknown>): AppManifest {
  const manifest: AppManifest = {};
  if (entry.name !== undefined && entry.name !== null) {
    if (typeof entry.name !== 'string' || entry.name === '') throw new ManifestError('manifest.yml: name must be a string');
    manifest.name = entry.name;
  }
  if (entry.instances !== undefined && entry.instances !== null) {
    const n = entry.instances;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > AppBounds.maxInstances) {
      throw new ManifestError(`manifest.yml: instances must be a whole number from 0 to ${AppBounds.maxInstances}`);
    }
    manifest.instances = n;
  }
  if (entry.memory !== undefined && entry.memory !== null) {
    if (typeof entry.memory !== 'string' && typeof entry.memory !== 'number') throw new ManifestError('manifest.yml: memory must be a size like 256M or 1G');
    try {
      manifest.memoryMb = parseMemoryMb(entry.memory);
    } catch (error) {
      throw new ManifestError(`manifest.yml: ${(error as Error).message}`);
    }
  }
  if (entry.command !== undefined && entry.command !== null) {
    if (typeof entry.command !== 'string') throw new ManifestError('manifest.yml: command must be a string');
    manifest.command = entry.command;
  }
  if (entry.env !== undefined && entry.env !== null) manifest.env = parseEnv(entry.env);
  if (entry.session_affinity !== undefined && entry.session_affinity !== null) {
    if (typeof entry.session_affinity !== 'boolean') throw new ManifestError('manifest.yml: session_affinity must be true or false');
    manifest.sessionAffinity = entry.session_affinity;
  }
  if (entry.services !== undefined && entry.services !== null) manifest.services = parseServices(entry.services);
  if (entry.autoscale !== undefined && entry.autoscale !== null) {
    const policy = checkAutoscalePolicy(entry.autoscale);
    if (!policy.ok) throw new ManifestError(`manifest.yml: ${policy.error}`);
    manifest.autoscale = policy.value;
  }
  const uris = parseRoutes(entry);
  if (uris !== undefined) manifest.uris = uris;
  else {
    const hosts = stringList(entry, 'host', 'hosts');
    if (hosts !== undefined) manifest.hosts = hosts.map((host) => checkManifestUri(host));
  }
  return manifest;
}

function parseEnv(env: unknown): Record<string, string> {
  if (!isObject(env)) throw new ManifestError('manifest.yml: env must be a mapping of NAME: value');
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new ManifestError(`manifest.yml: env name "${key}" must be letters, digits and _, not starting with a digit`);
    if (value === null || typeof value === 'object') throw new ManifestError(`manifest.yml: env ${key} must be a string, number or boolean`);
    out[key] = String(value);
  }
  return out;
}

/** `services: [name, ...]`, or cf's newer `- name: NAME` items; names of existing service instances. */
function parseServices(value: unknown): string[] {
  if (!Array.isArray(value)) throw new ManifestError('manifest.yml: services must be a list of service names (skiff services lists yours)');
  const names = value.map((item, i) => {
    const name = isObject(item) ? item.name : item;
    if (typeof name !== 'string' || !SERVICE_NAME.test(name)) {
      throw new ManifestError(`manifest.yml: services[${i}] must be a service name (lowercase letters, digits, '-' and '_')`);
    }
    return name;
  });
  return [...new Set(names)];
}

function parseRoutes(entry: Record<string, unknown>): string[] | undefined {
  if (entry.routes !== undefined && entry.routes !== null) {
    if (!Array.isArray(entry.routes)) throw new ManifestError('manifest.yml: routes must be a list of "- route: host.domain"');
    return entry.routes.map((item, i) => {
      const route = isObject(item) ? item.route : undefined;
      if (typeof route !== 'string') throw new ManifestError(`manifest.yml: routes[${i}] must be "- route: host.domain"`);
      return checkManifestUri(route);
    });
  }
  const hosts = stringList(entry, 'host', 'hosts');
  const domains = stringList(entry, 'domain', 'domains');
  if (hosts === undefined && domains === undefined) return undefined;
  // Hosts without a domain take the platform's, which only the API knows: push resolves them.
  if (domains === undefined) return undefined;
  const names = hosts ?? (typeof entry.name === 'string' ? [entry.name] : undefined);
  if (names === undefined) throw new ManifestError('manifest.yml: domain needs a host or a name');
  return names.flatMap((host) => domains.map((domain) => checkManifestUri(`${host}.${domain}`)));
}

function stringList(entry: Record<string, unknown>, single: string, plural: string): string[] | undefined {
  const list: string[] = [];
  if (entry[single] !== undefined && entry[single] !== null) {
    if (typeof entry[single] !== 'string') throw new ManifestError(`manifest.yml: ${single} must be a string`);
    list.push(entry[single]);
  }
  if (entry[plural] !== undefined && entry[plural] !== null) {
    const many = entry[plural];
    if (!Array.isArray(many) || !many.every((x) => typeof x === 'string')) throw new ManifestError(`manifest.yml: ${plural} must be a list of strings`);
    list.push(...many);
  }
  return list.length === 0 ? undefined : list;
}

function checkManifestUri(route: string): string {
  try {
    return checkUri(route);
  } catch (error) {
    throw new ManifestError(`manifest.yml: ${(error as Error).message}`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
