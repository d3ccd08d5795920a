// users, add-user, delete-user (admin).

import { checkEmail, checkPositionals, UsageError } from './args';
import { CliError, type Context } from './context';
import { ApiError } from './api';
import { askHidden, confirm, isInteractive } from './prompt';
import type { CommandArgs } from './registry';
import { formatTable } from './table';
import type { User } from './types';

export async function list(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 0, 'skiff users');
  const users = (await ctx.api().json<User[]>('GET', '/users').catch(adminOnly)) ?? [];
  if (values.json) {
    ctx.printJson(users);
    return 0;
  }
  const rows = [...users].sort((a, b) => a.email.localeCompare(b.email)).map((u) => [u.email, u.admin ? 'yes' : 'no']);
  ctx.print(formatTable(['EMAIL', 'ADMIN'], rows));
  return 0;
}

export async function add(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff add-user EMAIL --password P');
  const email = checkEmail(positionals[0]);
  const api = ctx.api();
  let password = values.password as string | undefined;
  if (password === undefined) {
    if (!isInteractive()) throw new UsageError('add-user needs --password when not run on a terminal');
    password = await askHidden(`password for ${email}: `);
  }
  if (password === '') throw new UsageError('missing password');
  await api.json('POST', '/users', { body: { email, password, admin: values.admin === true } }).catch(adminOnly);
  ctx.print(`added ${email}${values.admin ? ' (admin)' : ''}`);
  return 0;
}

export async function remove(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff delete-user EMAIL');
  const email = checkEmail(positionals[0]);
  const api = ctx.api();
  if (!values.force && isInteractive() && !(await confirm(`delete user ${email} and all their apps?`))) {
    ctx.print('not deleted');
    return 1;
  }
  await api.json('DELETE', `/users/${encodeURIComponent(email)}`).catch((error: unknown) => {
    if (error instanceof ApiError && error.status === 404) throw new CliError(`unknown user ${email}`);
    return adminOnly(error);
  });
  ctx.print(`deleted ${email}`);
  return 0;
}

function adminOnly(error: unknown): never {
  if (error instanceof ApiError && error.status === 403) throw new CliError('only admins can manage users');
  throw error;
}
