// target, login, logout, passwd.

import { Api, ApiError, oneLine } from './api';
import { checkEmail, checkPositionals, isEmailAddress, normaliseTarget, UsageError } from './args';
import { CliError, type Context } from './context';
import { ask, askHidden, isInteractive } from './prompt';
import type { Info } from './types';
import type { CommandArgs } from './registry';

export async function target(ctx: Context, { positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff target [URL]');
  if (positionals.length === 0) {
    const current = ctx.requireTarget();
    ctx.print(`target: ${current}${ctx.config.token === undefined ? ' (not logged in)' : ''}`);
    return 0;
  }
  const url = normaliseTarget(positionals[0]!);
  const info = await new Api(url).json<Info>('GET', '/info').catch((error: unknown) => {
    if (error instanceof ApiError) throw new CliError(`${url} does not look like a Skiff API: GET /info answered HTTP ${error.status}`);
    throw error;
  });
  if (typeof info !== 'object' || info === null || typeof info.name !== 'string') {
    throw new CliError(`${url} does not look like a Skiff API: GET /info has no name`);
  }
  // A token is only good for the API that issued it.
  const keepToken = ctx.config.target === url ? ctx.config.token : undefined;
  ctx.save({ target: url, token: keepToken });
  ctx.print(`target: ${url} (${info.name}${info.version ? ` ${info.version}` : ''})`);
  if (keepToken === undefined) ctx.print('next: skiff login');
  return 0;
}

export async function login(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff login [EMAIL] [--email E --password P]');
  const api = ctx.anonymousApi();
  let email = (values.email as string | undefined) ?? positionals[0];
  let password = values.password as string | undefined;
  if (email === undefined || password === undefined) {
    if (!isInteractive()) throw new UsageError('login needs --email and --password when not run on a terminal');
    if (email === undefined) email = (await ask('email: ')).trim();
    if (password === undefined) password = await askHidden('password: ');
  }
  checkEmail(email);
  if (password === '') throw new UsageError('missing password');
  const token = await requestToken(api, email, password);
  ctx.save({ target: api.target, token });
  ctx.print(`logged in as ${email} on ${api.target}`);
  return 0;
}

/** `POST /users/:email/tokens`: the token, or one line saying why not. */
async function requestToken(api: Api, email: string, password: string): Promise<string> {
  let reply: { token?: unknown } | undefined;
  try {
    reply = await api.json<{ token?: unknown }>('POST', `/users/${encodeURIComponent(email)}/tokens`, { body: { password } });
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403 || error.status === 404)) {
      throw new CliError('login failed: wrong email or password');
    }
    throw error;
  }
  if (typeof reply?.token !== 'string' || reply.token === '') throw new CliError('login failed: the API answered without a token');
  return reply.token;
}

const PASSWD_USAGE = 'skiff passwd [EMAIL] [--old P --new P]';

/**
 * Your own password (old and new, asked on a terminal), or with EMAIL
 * (admin) another user's. Changing your own retires your token, so the CLI
 * logs in again with the new password and keeps the new token.
 */
export async function passwd(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  // A stray word here may be a password typed in the wrong place: never echo it.
  if (positionals.length > 1) throw new UsageError(`too many arguments (usage: ${PASSWD_USAGE})`);
  const first = positionals[0];
  if (first !== undefined && !isEmailAddress(first)) throw new UsageError(`EMAIL must be an email address (usage: ${PASSWD_USAGE})`);
  const named = first?.toLowerCase();
  let oldPassword = values.old as string | undefined;
  let newPassword = values.new as string | undefined;
  if (oldPassword === '' || newPassword === '') throw new UsageError('missing password');
  const interactive = isInteractive();
  // Off a terminal every password comes from a flag: say what is missing before asking the API anything.
  if (!interactive && (newPassword === undefined || (named === undefined && oldPassword === undefined))) {
    throw new UsageError(named === undefined ? 'passwd needs --old and --new when not run on a terminal' : 'passwd EMAIL needs --new when not run on a terminal');
  }
  const api = ctx.api();
  const me = (await api.json<Info>('GET', '/info'))?.user;
  if (typeof me !== 'string' || me === '') throw new CliError('cannot tell who is logged in: GET /info answered without a user');
  const email = named ?? me;
  const own = email === me.toLowerCase();
  if (!own && oldPassword !== undefined) throw new UsageError(`--old is only for your own password; set ${email}'s with: skiff passwd ${email} --new P`);
  if (own && oldPassword === undefined) {
    if (!interactive) throw new UsageError('changing your own password needs --old when not run on a terminal');
    oldPassword = await askHidden('old password: ');
    if (oldPassword === '') throw new UsageError('missing password');
  }
  if (newPassword === undefined) {
    newPassword = await askHidden(own ? 'new password: ' : `new password for ${email}: `);
    if (newPassword === '') throw new UsageError('missing password');
    if ((await askHidden('new password again: ')) !== newPassword) throw new UsageError('the new passwords do not match');
  }
  const body = own ? { old_password: oldPassword, password: newPassword } : { password: newPassword };
  await api.json('PUT', `/users/${encodeURIComponent(email)}/password`, { body }).catch((error: unknown) => {
    if (error instanceof ApiError && error.status === 404) throw new CliError(`unknown user ${email}`);
    throw error;
  });
  if (!own) {
    ctx.print(`changed the password of ${email}; their earlier logins no longer work`);
    return 0;
  }
  let token: string;
  try {
    token = await requestToken(ctx.anonymousApi(), email, newPassword);
  } catch (error) {
    ctx.save({ target: api.target });
    throw new CliError(`password changed, but logging in again failed (${oneLine((error as Error).message)}): run \`skiff login\``);
  }
  ctx.save({ target: api.target, token });
  ctx.print(`password changed; logged in again as ${email} with the new password`);
  return 0;
}

export async function logout(ctx: Context, { positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 0, 'skiff logout');
  ctx.save({ target: ctx.config.target });
  ctx.print('logged out');
  return 0;
}
