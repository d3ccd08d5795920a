// Installs an app's dependencies into its directory during staging, so that
// the droplet runs without reaching a package registry: npm for a Node.js
// app that declares dependencies but ships no node_modules, pip for a
// requirements.txt that lists packages.

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StagingError } from './errors';
import { isFile } from './detect';
import type { BuildUser } from './build-user';
import { describeResult, runCommand } from './run-command';
import type { StagingLog } from './staging-log';

export interface CommandContext {
  appDir: string;
  /** The whole environment of the commands (minimal, see Stager). */
  env: Record<string, string>;
  timeoutMs: number;
  log: StagingLog;
  signal?: AbortSignal;
  /** The job's build uid (the stager is root); unset, commands run as the stager's user. */
  runAs?: BuildUser;
}

export const NPM_INSTALL = ['npm', 'install', '--omit=dev', '--no-audit', '--no-fund'];

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export function hasNodeDependencies(pkg: Record<string, unknown>): boolean {
  return ['dependencies', 'optionalDependencies'].some((key) => {
    const deps = pkg[key];
    return typeof deps === 'object' && deps !== null && Object.keys(deps).length > 0;
  });
}

/** True when a requirements.txt names at least one package (blank and comment lines do not count). */
export function requirementsListPackages(text: string): boolean {
  return text.split(/\r?\n/).some((line) => line.replace(/(^|\s)#.*$/, '').trim() !== '');
}

async function run(ctx: CommandContext, argv: string[], what: string, extraEnv: Record<string, string> = {}): Promise<void> {
  const result = await runCommand(argv, {
    cwd: ctx.appDir,
    env: { ...ctx.env, ...extraEnv },
    timeoutMs: ctx.timeoutMs,
    signal: ctx.signal,
    runAs: ctx.runAs,
    onLine: (line) => {
      if (line.trim() !== '') ctx.log.output(line);
    },
  });
  if (result.exitCode !== 0) throw new StagingError(`${what} failed (${describeResult(result, ctx.timeoutMs)}); see the staging log`);
}

/** npm install when package.json declares dependencies and node_modules is not shipped. */
export async function installNodeDependencies(ctx: CommandContext, pkg: Record<string, unknown> | undefined): Promise<void> {
  if (!pkg || !hasNodeDependencies(pkg)) return;
  if (await isDirectory(join(ctx.appDir, 'node_modules'))) {
    ctx.log.step('Using the node_modules shipped with the app');
    return;
  }
  ctx.log.step(`Installing Node.js dependencies: ${NPM_INSTALL.join(' ')}`);
  await run(ctx, NPM_INSTALL, 'npm install', {
    npm_config_update_notifier: 'false',
    npm_config_loglevel: 'warn',
  });
}

export async function pipUsable(ctx: CommandContext): Promise<{ ok: boolean; reason: string }> {
  const lines: string[] = [];
  const result = await runCommand(['python3', '-m', 'pip', '--version'], {
    cwd: ctx.appDir,
    env: ctx.env,
    timeoutMs: Math.min(ctx.timeoutMs, 60_000),
    signal: ctx.signal,
    // `python3 -m` puts the app directory on sys.path: an app's own pip.py would run.
    runAs: ctx.runAs,
    onLine: (line) => lines.push(line),
  });
  return { ok: result.exitCode === 0, reason: result.exitCode === 0 ? '' : lines.at(-1) ?? describeResult(result, ctx.timeoutMs) };
}

/**
 * True when the app has a requirements.txt that lists packages. Asked before
 * any build command runs: afterwards the file is the build's, which could
 * have made it a link to anything the stager can read.
 */
export async function needsPythonRequirements(appDir: string): Promise<boolean> {
  const path = join(appDir, 'requirements.txt');
  if (!(await isFile(path))) return false;
  return requirementsListPackages(await readFile(path, 'utf8'));
}

/** pip install --target into the app directory, which is on sys.path when `python3 app.py` runs; for an app that needsPythonRequirements. */
export async function installPythonRequirements(ctx: CommandContext): Promise<void> {
  const pip = await pipUsable(ctx);
  if (!pip.ok) {
    throw new StagingError(
      'requirements.txt lists packages but pip is not available on the stager ' +
        `(python3 -m pip --version failed: ${pip.reason.slice(0, 200)}); ` +
        'install pip there, or ship the packages inside the app',
    );
  }
  const argv = ['python3', '-m', 'pip', 'install', '--target', '.', '-r', 'requirements.txt',
    '--no-input', '--disable-pip-version-check', '--no-warn-script-location', '--progress-bar', 'off'];
  ctx.log.step(`Installing Python dependencies: ${argv.join(' ')}`);
  // Root is how stagers often run; pip's advice about virtualenvs does not apply to --target.
  await run(ctx, argv, 'pip install', { PIP_ROOT_USER_ACTION: 'ignore' });
}
