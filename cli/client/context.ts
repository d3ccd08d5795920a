// What every client command gets: the config, the API client, the output
// streams, and whether a person is at the keyboard.

import { Api, type Query } from './api';
import { readConfig, skiffHome, writeConfig, type ClientConfig } from './config';
import { CliError } from './wait';

export { CliError };

export class Context {
  readonly home: string;
  config: ClientConfig;

  constructor(
    readonly out: NodeJS.WriteStream = process.stdout,
    readonly err: NodeJS.WriteStream = process.stderr,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.home = skiffHome(env);
    this.config = readConfig(this.home);
  }

  requireTarget(): string {
    if (this.config.target === undefined) throw new CliError('no target set: run `skiff target URL` (e.g. skiff target http://127.0.0.1:9022)');
    return this.config.target;
  }

  /** Without a token: /info and the token request. */
  anonymousApi(): Api {
    return new Api(this.requireTarget());
  }

  api(): Api {
    const target = this.requireTarget();
    if (this.config.token === undefined) throw new CliError(`not logged in to ${target}: run \`skiff login\``);
    return new Api(target, this.config.token);
  }

  save(config: ClientConfig): void {
    writeConfig(config, this.home);
    this.config = config;
  }

  print(text: string): void {
    this.out.write(text.endsWith('\n') ? text : text + '\n');
  }

  /** Progress and notes go to stderr, so stdout stays the command's result. */
  note(text: string): void {
    this.err.write(text + '\n');
  }

  printJson(value: unknown): void {
    this.out.write(JSON.stringify(value, null, 2) + '\n');
  }
}

/** `?group=OWNER` when an admin acts on another user's app. */
export function groupQuery(group: unknown): Query {
  return typeof group === 'string' && group !== '' ? { group } : {};
}

export function appPath(name: string, rest = ''): string {
  return `/apps/${encodeURIComponent(name)}${rest}`;
}
