import { parseArgs } from 'node:util';

/** A bad command-line argument or environment value: the process prints one line and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface FlagSpec {
  name: string;
  kind: 'string' | 'number' | 'boolean';
  help: string;
  /** Environment variable read when the flag is absent; by default PREFIX_NAME_IN_SNAKE_CASE. */
  env?: string;
  /** Shown in help; applied by the caller (so it can tell "given" from "default"). */
  defaultText?: string;
  min?: number;
  max?: number;
  choices?: readonly string[];
  /** Secret values are never echoed back in errors. */
  secret?: boolean;
}

export type FlagValue = string | number | boolean;
export interface ParsedFlags {
  /** Only values given by flag or environment; absent ones are undefined. */
  values: Record<string, FlagValue | undefined>;
  sources: Record<string, 'flag' | 'env' | undefined>;
  positionals: string[];
}

export function envName(prefix: string, flag: string): string {
  return `${prefix}_${flag.replace(/-/g, '_').toUpperCase()}`;
}

/**
 * Parses `--flag value` arguments, falling back to environment variables.
 * Unknown flags, missing values and out-of-range numbers are UsageErrors
 * naming the flag, so every role fails the same clear way.
 */
export function parseFlags(
  argv: string[],
  specs: readonly FlagSpec[],
  envPrefix: string,
  env: NodeJS.ProcessEnv = process.env,
): ParsedFlags {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const spec of specs) options[spec.name] = { type: spec.kind === 'boolean' ? 'boolean' : 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(conciseParseError((error as Error).message));
  }
  const values: ParsedFlags['values'] = {};
  const sources: ParsedFlags['sources'] = {};
  for (const spec of specs) {
    const fromFlag = parsed.values[spec.name];
    const envVar = spec.env ?? envName(envPrefix, spec.name);
    const fromEnv = env[envVar];
    let raw: string | boolean | undefined;
    let origin: string;
    if (fromFlag !== undefined) {
      raw = fromFlag as string | boolean;
      sources[spec.name] = 'flag';
      origin = `--${spec.name}`;
    } else if (fromEnv !== undefined && fromEnv !== '') {
      raw = spec.kind === 'boolean' ? !/^(0|false|no|off)$/i.test(fromEnv) : fromEnv;
      sources[spec.name] = 'env';
      origin = envVar;
    } else {
      continue;
    }
    values[spec.name] = convert(spec, raw, origin);
  }
  if (parsed.values.help) values.help = true;
  return { values, sources, positionals: parsed.positionals };
}

function convert(spec: FlagSpec, raw: string | boolean, origin: string): FlagValue {
  if (spec.kind === 'boolean') return raw;
  const text = String(raw);
  const shown = spec.secret ? '(hidden)' : JSON.stringify(text);
  if (spec.kind === 'number') {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${origin} must be a number, got ${shown}`);
    if (spec.min !== undefined && n < spec.min) throw new UsageError(`${origin} must be at least ${spec.min}, got ${n}`);
    if (spec.max !== undefined && n > spec.max) throw new UsageError(`${origin} must be at most ${spec.max}, got ${n}`);
    return n;
  }
  if (spec.choices !== undefined && !spec.choices.includes(text))
    throw new UsageError(`${origin} must be one of ${spec.choices.join(', ')}, got ${shown}`);
  return text;
}

function conciseParseError(message: string): string {
  // node:util's messages are long and mention internals; keep the part that names the flag.
  const unknown = /Unknown option '([^']+)'/.exec(message);
  if (unknown) return `unknown option ${unknown[1]}`;
  const missing = /Option '([^']+?)(?: <value>)?' argument missing/.exec(message);
  if (missing) return `option ${missing[1].split(',').pop()!.trim()} needs a value`;
  return message.split('\n')[0];
}

export function helpText(command: string, specs: readonly FlagSpec[], envPrefix: string): string {
  const lines = [`usage: ${command} [flags]`, ''];
  for (const spec of specs) {
    const arg = spec.kind === 'boolean' ? '' : spec.kind === 'number' ? ' N' : ' VALUE';
    const dflt = spec.defaultText !== undefined ? ` (default ${spec.defaultText})` : '';
    lines.push(`  --${spec.name}${arg}`.padEnd(34) + `${spec.help}${dflt} [$${spec.env ?? envName(envPrefix, spec.name)}]`);
  }
  return lines.join('\n');
}

/**
 * A role's flags as its main() takes them: a usage error prints one line on
 * stderr and gives exit code 2, `--help` prints the flags and gives 0;
 * otherwise the parsed options.
 */
export function parseRoleOptions<T extends { help: boolean }>(
  command: string,
  specs: readonly FlagSpec[],
  envPrefix: string,
  parse: () => T,
): T | number {
  let options: T;
  try {
    options = parse();
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${command}: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (options.help) {
    process.stdout.write(helpText(command, specs, envPrefix) + '\n');
    return 0;
  }
  return options;
}
