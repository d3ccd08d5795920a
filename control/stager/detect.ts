// Framework detection: which runtime an app needs and the command that starts
// it, from its files. Order of precedence: the manifest's `command`, then a
// Procfile's `web:` line, then Node.js, Python, static site.

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StagingError } from './errors';

export type Runtime = 'node' | 'python' | 'static';

export interface Detection {
  runtime: Runtime;
  /** How the start command was found: node, python, static, procfile or manifest. */
  framework: string;
  startCommand: string;
  /** One line for the staging log, e.g. "Node.js app (package.json scripts.start)". */
  reason: string;
  /** Something the app's author should know about the start command, for the staging log. */
  note?: string;
}

/** Where the stager puts the static file server inside the app directory. */
export const STATIC_SERVER_PATH = '.skiff/static-server.js';

export const NO_START_COMMAND =
  'no start command: add a Procfile with a web: line, package.json, app.py/main.py or index.html';

export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Reads and parses package.json; undefined when absent, a StagingError when unreadable. */
export async function readPackageJson(appDir: string): Promise<Record<string, unknown> | undefined> {
  const path = join(appDir, 'package.json');
  if (!(await isFile(path))) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new StagingError(`package.json is not valid JSON: ${(err as Error).message.split('\n')[0]!.slice(0, 200)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new StagingError('package.json must hold a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/** The `web:` command of a Procfile's text; undefined when it has none. */
export function procfileWebCommand(text: string): string | undefined {
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*web\s*:(.*)$/.exec(line);
    if (match) return match[1]!.trim();
  }
  return undefined;
}

/** Quotes a path for `/bin/sh -c` when it holds anything beyond the harmless characters. */
export function shellQuote(word: string): string {
  return /^[\w./@%+=:,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The runtime a start command needs, from its program name; undefined when it does not say. */
export function runtimeOfCommand(command: string): Runtime | undefined {
  const program = command
    .trim()
    .split(/\s+/)
    .find((word) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(word) && word !== 'exec' && word !== 'env');
  const name = program?.split('/').pop() ?? '';
  if (/^(node|nodejs|npm|npx|yarn|pnpm)$/.test(name)) return 'node';
  if (/^(python[23]?(\.\d+)?|gunicorn|uvicorn|flask|waitress-serve)$/.test(name)) return 'python';
  return undefined;
}

/**
 * What `npm start` runs, without npm: `prestart && start && poststart`, as
 * Cloud Foundry's Node.js buildpack for Paketo (npm-start) composes it. A
 * start script that is only `npm run X` becomes X's own scripts. npm left in
 * the instance's tree would cost about 90 MB of its memory limit (a
 * hello-world app: 45 MB instead of 140 MB), stand between the DEA's signals
 * and the app, and write its notices into the app's logs. What npm would add
 * besides: node_modules/.bin on PATH (the DEA does that for every app); its
 * own variables (npm_package_*, npm_lifecycle_*, npm_config_*) are not set,
 * as under a Procfile line. Undefined when there is no start script.
 */
export function npmStartCommand(scripts: Record<string, unknown>): string | undefined {
  const script = (name: string): string | undefined => {
    const text = scripts[name];
    return typeof text === 'string' && text.trim() !== '' ? text.trim() : undefined;
  };
  const compose = (name: string, seen: ReadonlySet<string>): string | undefined => {
    const body = script(name);
    if (body === undefined) return undefined;
    const inner = /^npm\s+(?:run|run-script)\s+([\w:.-]+)$/.exec(body)?.[1] ?? (body === 'npm start' ? 'start' : undefined);
    // Scripts that run each other in a loop stay as written instead of being resolved forever.
    const resolved = inner !== undefined && !seen.has(inner) ? compose(inner, new Set([...seen, inner])) : undefined;
    return [script(`pre${name}`), resolved ?? body, script(`post${name}`)].filter((part) => part !== undefined).join(' && ');
  };
  return compose('start', new Set(['start']));
}

/** npm's variables that the start scripts name; they are not set without npm. */
export function npmVariablesUsed(scripts: Record<string, unknown>): string[] {
  const names = new Set<string>();
  for (const name of ['prestart', 'start', 'poststart']) {
    const text = scripts[name];
    if (typeof text !== 'string') continue;
    for (const match of text.matchAll(/\bnpm_(?:package|lifecycle|config)_\w+/g)) names.add(match[0]);
  }
  return [...names];
}

async function detectFromFiles(appDir: string): Promise<Detection | undefined> {
  const pkg = await readPackageJson(appDir);
  if (pkg) {
    const scripts = typeof pkg.scripts === 'object' && pkg.scripts !== null ? (pkg.scripts as Record<string, unknown>) : {};
    const startCommand = npmStartCommand(scripts);
    if (startCommand !== undefined) {
      const used = npmVariablesUsed(scripts);
      const note = used.length === 0
        ? undefined
        : `The start scripts use ${used.join(', ')}, which only npm sets, and they run without npm: ` +
          'put `web: npm start` in a Procfile to run them through npm';
      return { runtime: 'node', framework: 'node', startCommand, reason: 'Node.js app (package.json scripts.start)', ...(note ? { note } : {}) };
    }
    // `npm init` writes "main": "index.js" whether or not there is one: a
    // main that is not there is no start command, and detection goes on.
    const main = typeof pkg.main === 'string' ? pkg.main.trim() : '';
    if (main !== '' && ((await isFile(join(appDir, main))) || (await isFile(join(appDir, `${main}.js`))))) {
      return { runtime: 'node', framework: 'node', startCommand: `node ${shellQuote(main)}`, reason: 'Node.js app (package.json main)' };
    }
  }
  for (const script of ['server.js', 'app.js']) {
    if (await isFile(join(appDir, script))) {
      return { runtime: 'node', framework: 'node', startCommand: `node ${script}`, reason: `Node.js app (${script})` };
    }
  }
  for (const script of ['app.py', 'main.py']) {
    if (await isFile(join(appDir, script))) {
      return { runtime: 'python', framework: 'python', startCommand: `python3 ${script}`, reason: `Python app (${script})` };
    }
  }
  if (await isFile(join(appDir, 'index.html'))) {
    return { runtime: 'static', framework: 'static', startCommand: `node ${STATIC_SERVER_PATH}`, reason: 'static site (index.html)' };
  }
  return undefined;
}

/** The runtime the app's files suggest, for a start command that does not name one. */
async function runtimeOfFiles(appDir: string): Promise<Runtime | undefined> {
  if ((await isFile(join(appDir, 'package.json'))) || (await isFile(join(appDir, 'server.js'))) || (await isFile(join(appDir, 'app.js')))) return 'node';
  for (const file of ['app.py', 'main.py', 'requirements.txt']) if (await isFile(join(appDir, file))) return 'python';
  if (await isFile(join(appDir, 'index.html'))) return 'static';
  return undefined;
}

export async function detect(appDir: string, manifestCommand: string | null): Promise<Detection> {
  let override: { command: string; framework: 'manifest' | 'procfile'; reason: string } | undefined;
  if (manifestCommand !== null && manifestCommand.trim() !== '') {
    override = { command: manifestCommand.trim(), framework: 'manifest', reason: 'start command from the manifest' };
  } else if (await isFile(join(appDir, 'Procfile'))) {
    const web = procfileWebCommand(await readFile(join(appDir, 'Procfile'), 'utf8'));
    if (web === '') throw new StagingError('Procfile has an empty web: line');
    if (web !== undefined) override = { command: web, framework: 'procfile', reason: 'start command from the Procfile web: line' };
  }
  if (override) {
    // Any runtime serves a command that names none: every DEA has Node.js, since Skiff runs on it.
    const runtime = runtimeOfCommand(override.command) ?? (await runtimeOfFiles(appDir)) ?? 'node';
    return { runtime, framework: override.framework, startCommand: override.command, reason: override.reason };
  }
  const detected = await detectFromFiles(appDir);
  if (!detected) throw new StagingError(NO_START_COMMAND);
  return detected;
}
