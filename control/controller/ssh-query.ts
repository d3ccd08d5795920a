// The query of `GET /apps/:name/instances/:index/ssh` (control/API.md):
// command, tty, cols, rows, term. Checked before the upgrade, so a bad one
// gets a 400 with the API's JSON error, not a WebSocket that closes.
// The command may come in the X-Skiff-Command header instead (percent-encoded),
// which is what the CLI sends: a query string ends up in access logs, and
// command lines carry passwords too.

import { SSH_MAX_COMMAND, SSH_MAX_TERMINAL } from '../../bus/platform';
import { HttpError } from './http';

export interface SshParams {
  command: string;
  tty: boolean;
  cols: number;
  rows: number;
  term?: string;
}

function flag(query: URLSearchParams, name: string): boolean {
  const value = query.get(name);
  if (value === null || value === '' || value === '0' || value === 'false') return false;
  if (value === '1' || value === 'true') return true;
  throw new HttpError(400, `${name} must be 1 or 0`);
}

function side(query: URLSearchParams, name: string, fallback: number): number {
  const value = query.get(name);
  if (value === null || value === '') return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > SSH_MAX_TERMINAL) throw new HttpError(400, `${name} must be a whole number from 1 to ${SSH_MAX_TERMINAL}`);
  return n;
}

export const COMMAND_HEADER = 'x-skiff-command';

export function parseSshQuery(query: URLSearchParams, commandHeader?: string): SshParams {
  let command = query.get('command') ?? '';
  if (commandHeader !== undefined) {
    try {
      command = decodeURIComponent(commandHeader);
    } catch {
      throw new HttpError(400, 'X-Skiff-Command must be percent-encoded UTF-8');
    }
  }
  if (command.length > SSH_MAX_COMMAND) throw new HttpError(400, `command longer than ${SSH_MAX_COMMAND} characters`);
  if (command.includes('\0')) throw new HttpError(400, 'command must not contain NUL');
  const tty = flag(query, 'tty');
  const term = query.get('term') ?? undefined;
  if (term !== undefined && !/^[A-Za-z0-9._+-]{1,64}$/.test(term)) throw new HttpError(400, 'term must be a terminal name like xterm-256color');
  return { command, tty, cols: side(query, 'cols', 80), rows: side(query, 'rows', 24), ...(term !== undefined ? { term } : {}) };
}
