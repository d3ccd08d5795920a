// The CLI's own state: `$SKIFF_HOME/config.json` = {"target","token"}
// (SKIFF_HOME defaults to ~/.skiff). The token is a secret: the file is
// written mode 0600 inside a 0700 directory, atomically (write + rename), so
// an interrupted write never leaves half a file or a readable copy.

import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface ClientConfig {
  target?: string;
  token?: string;
}

export function skiffHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.SKIFF_HOME !== undefined && env.SKIFF_HOME !== '' ? env.SKIFF_HOME : join(homedir(), '.skiff');
}

export function configPath(home: string = skiffHome()): string {
  return join(home, 'config.json');
}

export function readConfig(home: string = skiffHome()): ClientConfig {
  const path = configPath(home);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not valid JSON: fix it or delete it and run \`skiff target\` again`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error(`${path} must hold a JSON object`);
  const record = data as Record<string, unknown>;
  const config: ClientConfig = {};
  if (typeof record.target === 'string' && record.target !== '') config.target = record.target;
  if (typeof record.token === 'string' && record.token !== '') config.token = record.token;
  return config;
}

export function writeConfig(config: ClientConfig, home: string = skiffHome()): void {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const path = configPath(home);
  const temporary = `${path}.${process.pid}.tmp`;
  const body: ClientConfig = {};
  if (config.target !== undefined) body.target = config.target;
  if (config.token !== undefined) body.token = config.token;
  writeFileSync(temporary, JSON.stringify(body, null, 2) + '\n', { mode: 0o600 });
  chmodSync(temporary, 0o600); // the umask may have narrowed it; never widened, but be exact
  renameSync(temporary, path);
}
