// target, login, logout.

import { Api, ApiError } from './api';
import { checkEmail, checkPositionals, normaliseTarget, UsageError } from './args';
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
  ctx.save({ target: api.target, token: reply.token });
  ctx.print(`logged in as ${email} on ${api.target}`);
  return 0;
}

export async function logout(ctx: Context, { positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 0, 'skiff logout');
  ctx.save({ target: ctx.config.target });
  ctx.print('logged out');
  return 0;
}
