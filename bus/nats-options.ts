// Where a role finds NATS and the credentials it connects with. Every
// role takes the same two flags. Credentials never come from the command
// line: /proc/<pid>/cmdline is readable by every process on the host, apps
// included. They come from a file (`--nats-credentials FILE`, 0600) or from
// the environment (NATS_USER + NATS_PASSWORD, or NATS_TOKEN, or a NATS_URL
// that carries them), which only the role's own user and root can read.

import { readFileSync, statSync } from 'node:fs';
import { redactUrl } from './connection';
import { UsageError, type FlagSpec, type ParsedFlags } from './flags';

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

export const NATS_FLAGS: readonly FlagSpec[] = [
  { name: 'nats', kind: 'string', env: 'NATS_URL', help: 'NATS server URL(s), comma-separated (no credentials here: see --nats-credentials)', defaultText: DEFAULT_NATS_URL },
  {
    name: 'nats-credentials',
    kind: 'string',
    env: 'SKIFF_NATS_CREDENTIALS',
    help: 'file with this role\'s NATS user, {"user","pass"} or {"token"} (and optionally "servers"), mode 0600; or set NATS_USER and NATS_PASSWORD',
  },
];

export interface NatsAuth {
  user?: string;
  pass?: string;
  token?: string;
  /** Where they came from, for logs and errors (never the secret itself). */
  origin: string;
}

export interface NatsTarget {
  /** Server URL(s) as given; may carry credentials only when they came from the environment. */
  nats: string;
  /** Undefined: connect as the URL says (credentials in NATS_URL, or anonymous). */
  natsAuth: NatsAuth | undefined;
}

/** The credentials file's shape, as `skiff up` writes it (operator.json has the same). */
export interface NatsCredentialsFile {
  servers?: string[];
  user?: string;
  pass?: string;
  token?: string;
}

/**
 * Reads the nats and nats-credentials flags of a role (their values and
 * sources from parseFlags). A URL with credentials given on the command
 * line is refused; removes NATS_USER, NATS_PASSWORD and NATS_TOKEN from
 * `env` once read.
 */
export function natsTarget(parsed: Pick<ParsedFlags, 'values' | 'sources'>, env: NodeJS.ProcessEnv): NatsTarget {
  const given = parsed.values.nats as string | undefined;
  if (given !== undefined && parsed.sources.nats === 'flag' && hasCredentials(given)) {
    throw new UsageError(
      `--nats must not carry a user, password or token (${redactUrl(given)}): every process can read command lines; ` +
        'put them in a file given with --nats-credentials, or in NATS_USER and NATS_PASSWORD',
    );
  }
  const file = parsed.values['nats-credentials'] as string | undefined;
  if (file !== undefined) {
    const origin = parsed.sources['nats-credentials'] === 'env' ? `SKIFF_NATS_CREDENTIALS (${file})` : `--nats-credentials ${file}`;
    const saved = readCredentialsFile(file, origin);
    const servers = given ?? (saved.servers && saved.servers.length > 0 ? saved.servers.join(',') : DEFAULT_NATS_URL);
    return { nats: servers, natsAuth: { user: saved.user, pass: saved.pass, token: saved.token, origin } };
  }
  const nats = given ?? DEFAULT_NATS_URL;
  const user = env.NATS_USER;
  const pass = env.NATS_PASSWORD;
  const token = env.NATS_TOKEN;
  // Consumed: nothing the role starts inherits them (a router's threads get them passed).
  delete env.NATS_USER;
  delete env.NATS_PASSWORD;
  delete env.NATS_TOKEN;
  if (user !== undefined && user !== '') {
    if (pass === undefined || pass === '') throw new UsageError('NATS_USER is set without NATS_PASSWORD');
    return { nats, natsAuth: { user, pass, origin: 'NATS_USER/NATS_PASSWORD' } };
  }
  if (token !== undefined && token !== '') return { nats, natsAuth: { token, origin: 'NATS_TOKEN' } };
  return { nats, natsAuth: undefined };
}

function hasCredentials(urls: string): boolean {
  return redactUrl(urls) !== urls;
}

export function readCredentialsFile(file: string, origin: string): NatsCredentialsFile {
  let text: string;
  try {
    const info = statSync(file);
    // As ssh does with keys: a secret others can read is no longer one.
    if ((info.mode & 0o077) !== 0) {
      throw new UsageError(`${origin}: the file is readable by other users (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
    }
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${origin}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${origin}: not JSON; expected {"user","pass"} or {"token"}`);
  }
  const fields = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const text_ = (key: string): string | undefined => (typeof fields[key] === 'string' && fields[key] !== '' ? (fields[key] as string) : undefined);
  const user = text_('user');
  const pass = text_('pass');
  const token = text_('token');
  if (!(user !== undefined && pass !== undefined) && token === undefined) {
    throw new UsageError(`${origin}: expected {"user","pass"} or {"token"}`);
  }
  const servers = Array.isArray(fields.servers) ? fields.servers.filter((s): s is string => typeof s === 'string' && s !== '') : undefined;
  return { servers, user, pass, token };
}
