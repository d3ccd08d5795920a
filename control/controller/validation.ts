// Validation of REST request bodies. Each function returns the cleaned value
// or a message for a 400; messages name the field, never echo a value (a
// misplaced password must not come back in an error or a log).

import { checkAutoscalePolicy, type AutoscalePolicy } from '../../bus/autoscale';
import { AppBounds } from '../../bus/platform';

export const APP_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Service instance names: like app names, and `_` (they name no host). */
export const SERVICE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Services one app may be bound to. */
export const MAX_SERVICES_PER_APP = 20;
const EMAIL = /^[^\s@/]{1,64}@[^\s@/]{1,255}$/;
// A host name, optionally followed by a context path (router longest-prefix routes).
const URI = /^(?=.{1,253}(\/|$))([a-z0-9*]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(\/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)*$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const MAX_INSTANCES = AppBounds.maxInstances;
export const MIN_MEMORY_MB = AppBounds.minMemoryMb;
export const MAX_MEMORY_MB = AppBounds.maxMemoryMb;
export const MIN_PASSWORD_LENGTH = 8;

export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

class Invalid extends Error {}

function checked<T>(read: () => T): Checked<T> {
  try {
    return { ok: true, value: read() };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, error: err.message };
    throw err;
  }
}

function fail(message: string): never {
  throw new Invalid(message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isAppName(name: string): boolean {
  return APP_NAME.test(name);
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export function isEmail(email: string): boolean {
  return EMAIL.test(email);
}

function appName(value: unknown): string {
  if (typeof value !== 'string' || !isAppName(value)) {
    fail('name must be 1-63 lowercase letters, digits or dashes, starting with a letter or digit');
  }
  return value;
}

function instances(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_INSTANCES) {
    fail(`instances must be an integer 0-${MAX_INSTANCES}`);
  }
  return value;
}

function memory(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < MIN_MEMORY_MB || value > MAX_MEMORY_MB) {
    fail(`memory must be an integer ${MIN_MEMORY_MB}-${MAX_MEMORY_MB} (MB)`);
  }
  return value;
}

function uris(value: unknown): string[] {
  if (!Array.isArray(value) || value.length > 50) fail('uris must be an array of at most 50 host names');
  const seen = new Set<string>();
  for (const [i, uri] of value.entries()) {
    if (typeof uri !== 'string' || !URI.test(uri.toLowerCase())) fail(`uris[${i}] must be a host name, optionally with a path`);
    seen.add(uri.toLowerCase());
  }
  return [...seen];
}

function env(value: unknown): Record<string, string> {
  if (!isObject(value)) fail('env must be an object of strings');
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (!ENV_KEY.test(key)) fail('env keys must be letters, digits and underscores, not starting with a digit');
    if (typeof v !== 'string') fail(`env.${key} must be a string`);
    if (v.includes('\0')) fail(`env.${key} must not contain NUL`);
    // defineProperty-equivalent via fromEntries below keeps "__proto__" a plain key.
    out[key] = v;
  }
  return Object.fromEntries(Object.entries(out));
}

function sessionAffinity(value: unknown): boolean {
  if (typeof value !== 'boolean') fail('session_affinity must be true or false');
  return value;
}

export function isServiceName(name: string): boolean {
  return SERVICE_NAME.test(name);
}

function serviceName(value: unknown, field = 'name'): string {
  if (typeof value !== 'string' || !isServiceName(value)) {
    fail(`${field} must be 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit`);
  }
  return value;
}

/** An app's `services`: names of service instances, no repeats (the order is kept). */
function serviceNames(value: unknown): string[] {
  if (!Array.isArray(value) || value.length > MAX_SERVICES_PER_APP) fail(`services must be an array of at most ${MAX_SERVICES_PER_APP} service names`);
  const names = value.map((name, i) => serviceName(name, `services[${i}]`));
  return [...new Set(names)];
}

function autoscale(value: unknown): AutoscalePolicy {
  const policy = checkAutoscalePolicy(value);
  if (!policy.ok) fail(policy.error);
  return policy.value;
}

function command(value: unknown): string | null {
  if (value === null || value === '') return null;
  if (typeof value !== 'string' || value.length > 4096 || value.includes('\0')) fail('command must be a string of at most 4096 characters');
  return value;
}

export interface NewApp {
  name: string;
  instances: number;
  memory: number;
  uris: string[];
  env: Record<string, string>;
  command: string | null;
  session_affinity: boolean;
  /** Names of service instances to bind. */
  services: string[];
  autoscale: AutoscalePolicy | null;
}

export function checkNewApp(body: unknown, domain: string): Checked<NewApp> {
  return checked(() => {
    if (!isObject(body)) fail('the body must be a JSON object');
    const name = appName(body.name);
    const policy = body.autoscale === undefined || body.autoscale === null ? null : autoscale(body.autoscale);
    const count = body.instances === undefined ? (policy?.min ?? 1) : instances(body.instances);
    if (policy !== null && (count < policy.min || count > policy.max)) fail(`instances must be within the autoscale policy's ${policy.min}-${policy.max}`);
    return {
      name,
      instances: count,
      autoscale: policy,
      memory: body.memory === undefined ? 256 : memory(body.memory),
      uris: body.uris === undefined ? [`${name}.${domain}`] : uris(body.uris),
      env: body.env === undefined ? {} : env(body.env),
      command: body.command === undefined ? null : command(body.command),
      session_affinity: body.session_affinity === undefined ? false : sessionAffinity(body.session_affinity),
      services: body.services === undefined || body.services === null ? [] : serviceNames(body.services),
    };
  });
}

export interface AppChange {
  state?: 'STARTED' | 'STOPPED';
  instances?: number;
  memory?: number;
  uris?: string[];
  env?: Record<string, string>;
  command?: string | null;
  session_affinity?: boolean;
  /** The whole list of the app's services: names as the body gives them; the API resolves them to ids before applyChange. */
  services?: string[];
  /** null turns autoscaling off. */
  autoscale?: AutoscalePolicy | null;
}

export function checkAppChange(body: unknown): Checked<AppChange> {
  return checked(() => {
    if (!isObject(body)) fail('the body must be a JSON object');
    const change: AppChange = {};
    if (body.state !== undefined) {
      if (body.state !== 'STARTED' && body.state !== 'STOPPED') fail('state must be STARTED or STOPPED');
      change.state = body.state;
    }
    if (body.instances !== undefined) change.instances = instances(body.instances);
    if (body.memory !== undefined) change.memory = memory(body.memory);
    if (body.uris !== undefined) change.uris = uris(body.uris);
    if (body.env !== undefined) change.env = env(body.env);
    if (body.command !== undefined) change.command = command(body.command);
    if (body.session_affinity !== undefined) change.session_affinity = sessionAffinity(body.session_affinity);
    if (body.services !== undefined) change.services = serviceNames(body.services);
    if (body.autoscale !== undefined) change.autoscale = body.autoscale === null ? null : autoscale(body.autoscale);
    if (body.name !== undefined && body.name !== null) fail('name cannot be changed');
    return change;
  });
}

export interface NewUser {
  email: string;
  password: string;
  admin: boolean;
}

export function checkNewUser(body: unknown): Checked<NewUser> {
  return checked(() => {
    if (!isObject(body)) fail('the body must be a JSON object');
    if (typeof body.email !== 'string' || !isEmail(normalizeEmail(body.email))) fail('email must be an email address');
    const password = newPassword(body.password);
    if (body.admin !== undefined && typeof body.admin !== 'boolean') fail('admin must be true or false');
    return { email: normalizeEmail(body.email), password, admin: body.admin === true };
  });
}

/** The rules for a password being set, for a new user and for a change alike. */
function newPassword(value: unknown): string {
  if (typeof value !== 'string' || value.length < MIN_PASSWORD_LENGTH) fail(`password must be a string of at least ${MIN_PASSWORD_LENGTH} characters`);
  return value;
}

export interface PasswordChange {
  /** Absent when not given (an admin setting another user's). */
  oldPassword: string | undefined;
  password: string;
}

/** `PUT /users/:email/password {"old_password"?,"password"}`. */
export function checkPasswordChange(body: unknown): Checked<PasswordChange> {
  return checked(() => {
    if (!isObject(body)) fail('the body must be a JSON object');
    const password = newPassword(body.password);
    const old = body.old_password;
    if (old !== undefined && (typeof old !== 'string' || old === '')) fail('old_password must be a non-empty string');
    return { oldPassword: old as string | undefined, password };
  });
}

export function checkLogin(body: unknown): Checked<{ password: string }> {
  return checked(() => {
    if (!isObject(body) || typeof body.password !== 'string' || body.password === '') fail('password must be a non-empty string');
    return { password: body.password };
  });
}

export interface NewService {
  name: string;
  service: string;
  plan: string;
}

/** `POST /services {"name","service","plan"?}`; the plan defaults to `free`. Whether the offering and plan exist, the services nodes say. */
export function checkNewService(body: unknown): Checked<NewService> {
  return checked(() => {
    if (!isObject(body)) fail('the body must be a JSON object');
    const name = serviceName(body.name);
    if (typeof body.service !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(body.service)) fail('service must be the name of an offering, e.g. redis (skiff marketplace lists them)');
    if (body.plan !== undefined && body.plan !== null && (typeof body.plan !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(body.plan))) fail('plan must be the name of a plan, e.g. free');
    return { name, service: body.service, plan: typeof body.plan === 'string' ? body.plan : 'free' };
  });
}
