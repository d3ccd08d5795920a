// One line per event, greppable and parseable:
//   2026-11-26T10:00:00.000Z INFO router: message key=value key2="quoted value"
// Values that could break the line apart (spaces, quotes, '=', control
// characters) are JSON-quoted, so a hostile value cannot forge a log line.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Defaults to stderr, so a command's stdout (e.g. `--json`) stays clean. */
  stream?: NodeJS.WritableStream;
}

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(LEVEL_RANK, value);
}

export function levelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevel {
  const wanted = env.SKIFF_LOG_LEVEL?.trim().toLowerCase();
  return isLogLevel(wanted) ? wanted : 'info';
}

export function createLogger(component: string, opts: LoggerOptions = {}): Logger {
  const threshold = LEVEL_RANK[opts.level ?? levelFromEnv()];
  const stream = opts.stream ?? process.stderr;
  const write = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LEVEL_RANK[level] < threshold) return;
    stream.write(formatLine(new Date(), level, component, msg, fields) + '\n');
  };
  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
  };
}

/** A logger that drops everything; for callers that must pass one but have nowhere to log. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export function formatLine(time: Date, level: LogLevel, component: string, msg: string, fields?: LogFields): string {
  let line = `${time.toISOString()} ${level.toUpperCase()} ${component}: ${escapeControl(msg)}`;
  if (fields) {
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      line += ` ${safeKey(key)}=${formatValue(value)}`;
    }
  }
  return line;
}

const BARE_VALUE = /^[^\s"=\\\u0000-\u001f\u007f]+$/;

export function formatValue(value: unknown): string {
  if (typeof value === 'string') return BARE_VALUE.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null) return 'null';
  if (value instanceof Error) return formatValue(value.message);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'invalid-date' : value.toISOString();
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = undefined; // circular or BigInt inside: not worth crashing a log call over
  }
  return formatValue(json ?? String(value));
}

function safeKey(key: string): string {
  const cleaned = key.replace(/[^A-Za-z0-9_.\-]/g, '_');
  return cleaned === '' ? '_' : cleaned;
}

function escapeControl(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}
