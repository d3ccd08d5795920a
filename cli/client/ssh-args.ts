// What `skiff ssh N [--] [COMMAND ...]` sends: the command line, and whether
// to ask for a terminal.

import { UsageError } from './args';

const PLAIN_WORD = /^[A-Za-z0-9_\/.,:=@%+-]+$/;

/** A word as /bin/sh reads it back unchanged. */
export function shellQuote(word: string): string {
  return PLAIN_WORD.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * One argument is a command line for the remote shell, as ssh takes it
 * (`skiff ssh app 'echo $PORT'`). Several are words, each kept whole
 * (`skiff ssh app -- sh -c 'echo $PORT'`), where ssh would have joined them
 * with spaces and let the remote shell split them again. None: a shell.
 */
export function remoteCommand(words: readonly string[]): string {
  if (words.length === 1) return words[0]!;
  return words.map(shellQuote).join(' ');
}

/** A terminal when both ends are one (so `skiff ssh app -- cat f > copy` stays byte-exact), unless told. */
export function wantTerminal(flags: { tty?: unknown; 'no-tty'?: unknown }, stdinIsTty: boolean, stdoutIsTty: boolean): boolean {
  if (flags.tty === true && flags['no-tty'] === true) throw new UsageError('give --tty or --no-tty, not both');
  if (flags.tty === true) return true;
  if (flags['no-tty'] === true) return false;
  return stdinIsTty && stdoutIsTty;
}
