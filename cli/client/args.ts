// Validation of what users type on the command line. Each check throws a
// UsageError with one clear line, which the CLI prints before exiting 2.

import { parseFlags, UsageError, type FlagSpec, type ParsedFlags } from '../../bus/flags';

export { UsageError };

/**
 * Flags of a client command. The environment is consulted only for secrets
 * that name their variable (SKIFF_PASSWORD...): a stray SKIFF_* must not
 * change a command, but a password given as a flag sits in /proc/<pid>/cmdline
 * for every local user to read, while the environment is the user's own.
 */
export function parseCommandFlags(argv: string[], specs: readonly FlagSpec[], env: NodeJS.ProcessEnv = process.env): ParsedFlags {
  const secrets: NodeJS.ProcessEnv = {};
  for (const spec of specs) if (spec.secret === true && spec.env !== undefined && env[spec.env] !== undefined) secrets[spec.env] = env[spec.env];
  try {
    return parseFlags(argv, specs, 'SKIFF', secrets);
  } catch (error) {
    // node:util's wording for `--instances -1` is long and blames ambiguity; say what to do.
    const ambiguous = error instanceof UsageError ? /Option '([^']+)' argument is ambiguous/.exec(error.message) : null;
    if (ambiguous) {
      const flag = ambiguous[1]!.split(',').pop()!.trim();
      throw new UsageError(`option ${flag} needs a value; for one starting with '-' write ${flag}=VALUE`);
    }
    throw error;
  }
}

const APP_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function checkAppName(name: string | undefined, what = 'app name'): string {
  if (name === undefined || name === '') throw new UsageError(`missing ${what}`);
  if (!APP_NAME.test(name)) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(name)}: use lowercase letters, digits and '-', starting with a letter or digit, at most 63 characters`);
  }
  return name;
}

const SERVICE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function checkServiceName(name: string | undefined, what = 'service name'): string {
  if (name === undefined || name === '') throw new UsageError(`missing ${what}`);
  if (!SERVICE_NAME.test(name)) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(name)}: use lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 63 characters`);
  }
  return name;
}

/** A whole number within bounds, from a flag that parseFlags has already made numeric. */
export function checkWholeNumber(value: number | string | boolean | undefined, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (typeof value === 'boolean' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const URI = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$`);

/** A route "host.domain" or "host.domain/path", lowercased host; no scheme, no port. */
export function checkUri(input: string): string {
  const text = input.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) throw new UsageError(`route ${JSON.stringify(input)} must be a host name like shop.localhost, without http://`);
  const slash = text.indexOf('/');
  const host = (slash === -1 ? text : text.slice(0, slash)).toLowerCase();
  const path = slash === -1 ? '' : text.slice(slash).replace(/\/+$/, '');
  const uri = host + path;
  if (!URI.test(uri) || host.length > 253) throw new UsageError(`invalid route ${JSON.stringify(input)}: expected a host name like shop.localhost (optionally /path)`);
  return uri;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `K=V` sets, `K=` unsets (value null), as `skiff env N K=V ...` takes them. */
export function parseEnvAssignments(args: readonly string[]): Record<string, string | null> {
  const changes: Record<string, string | null> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq === -1) throw new UsageError(`expected NAME=value (or NAME= to unset), got ${JSON.stringify(arg)}`);
    const key = arg.slice(0, eq);
    if (!ENV_NAME.test(key)) throw new UsageError(`invalid variable name ${JSON.stringify(key)}: use letters, digits and _, not starting with a digit`);
    const value = arg.slice(eq + 1);
    changes[key] = value === '' ? null : value;
  }
  return changes;
}

export function isEmailAddress(text: string): boolean {
  return /^[^\s@/]+@[^\s@/]+$/.test(text);
}

export function checkEmail(email: string | undefined): string {
  if (email === undefined || email === '') throw new UsageError('missing email');
  if (!isEmailAddress(email)) throw new UsageError(`invalid email ${JSON.stringify(email)}`);
  return email;
}

/** "127.0.0.1:9022" -> "http://127.0.0.1:9022"; keeps a path prefix, drops a trailing slash. */
export function normaliseTarget(input: string): string {
  const text = input.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`invalid target ${JSON.stringify(input)}: expected a URL like http://127.0.0.1:9022`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`invalid target ${JSON.stringify(input)}: only http:// and https:// are supported`);
  if (url.username || url.password) throw new UsageError('the target URL must not carry credentials: use `skiff login`');
  if (url.search || url.hash) throw new UsageError(`invalid target ${JSON.stringify(input)}: no query or fragment`);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/** At most `max` positionals, naming the first surplus one. */
export function checkPositionals(positionals: readonly string[], max: number, usage: string): void {
  if (positionals.length > max) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[max])} (usage: ${usage})`);
}
