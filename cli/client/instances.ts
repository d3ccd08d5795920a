// stats, crashes, events, files, logs: looking into an app's instances and history.

import type { IncomingMessage } from 'node:http';
import { ApiError, readBody, type Api, type Query } from './api';
import { checkAppName, checkPositionals, checkWholeNumber } from './args';
import { appPath, CliError, groupQuery, type Context } from './context';
import { listInstances, notFoundAs } from './apps';
import type { CommandArgs } from './registry';
import { formatBytes } from './size';
import { formatTable } from './table';
import { formatTimestamp, formatUptime } from './time';
import type { Crash, InstanceStats } from './types';

export async function stats(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff stats N');
  const name = checkAppName(positionals[0]);
  const reply = (await ctx.api().json<Record<string, InstanceStats>>('GET', appPath(name, '/stats'), { query: groupQuery(values.group) }).catch(notFoundAs(name))) ?? {};
  if (values.json) {
    ctx.printJson(reply);
    return 0;
  }
  const rows = Object.entries(reply)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([index, { state, stats }]) => {
      const usage = stats?.usage;
      return [
        index,
        state,
        usage?.cpu !== undefined ? `${usage.cpu.toFixed(1)}%` : undefined,
        // Cloud Foundry v1 units: usage.mem in KB; quotas and usage.disk in bytes.
        usage?.mem !== undefined ? `${formatBytes(usage.mem * 1024)} (${quota(stats?.mem_quota)})` : undefined,
        usage?.disk !== undefined ? `${formatBytes(usage.disk)} (${quota(stats?.disk_quota)})` : undefined,
        stats?.uptime !== undefined ? formatUptime(stats.uptime) : undefined,
      ];
    });
  ctx.print(formatTable(['INDEX', 'STATE', 'CPU', 'MEM', 'DISK', 'UPTIME'], rows));
  return 0;
}

function quota(bytes: number | undefined): string {
  return bytes === undefined ? '-' : formatBytes(bytes).replace(/\.0(?=[KMGT]$)/, '');
}

export async function crashes(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff crashes N');
  const name = checkAppName(positionals[0]);
  const list = (await ctx.api().json<Crash[]>('GET', appPath(name, '/crashes'), { query: groupQuery(values.group) }).catch(notFoundAs(name))) ?? [];
  if (values.json) {
    ctx.printJson(list);
    return 0;
  }
  const rows = [...list]
    .sort((a, b) => a.since - b.since)
    .map((crash) => [crash.instance, crash.index, formatTimestamp(crash.since), crash.reason, crash.exit_status]);
  ctx.print(formatTable(['INSTANCE', 'INDEX', 'SINCE', 'REASON', 'EXIT'], rows));
  return 0;
}

interface AppEventLine {
  time: number;
  type: string;
  description: string;
  actor: string;
}

export async function events(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff events N');
  const name = checkAppName(positionals[0]);
  const list = (await ctx.api().json<AppEventLine[]>('GET', appPath(name, '/events'), { query: groupQuery(values.group) }).catch(notFoundAs(name))) ?? [];
  if (values.json) {
    ctx.printJson(list);
    return 0;
  }
  const rows = list.map((event) => [formatTimestamp(event.time), event.type, event.actor, event.description]);
  ctx.print(formatTable(['TIME', 'EVENT', 'BY', 'DESCRIPTION'], rows));
  return 0;
}

/** The instance `files` and `logs` look at: --instance, else the newest running, else the newest crashed. */
export async function pickInstance(api: Api, name: string, query: Query, given: unknown): Promise<string> {
  if (given !== undefined) {
    const text = String(given);
    if (/^\d+$/.test(text)) return String(checkWholeNumber(text, '--instance', 0));
    if (!/^[A-Za-z0-9_.-]{1,128}$/.test(text)) throw new CliError(`--instance must be an index or an instance id, got ${JSON.stringify(text)}`);
    return text;
  }
  const running = (await listInstances(api, name, query)).filter((i) => i.state === 'RUNNING');
  if (running.length > 0) return String(running.sort((a, b) => (b.since ?? 0) - (a.since ?? 0))[0]!.index);
  const crashed = (await api.json<Crash[]>('GET', appPath(name, '/crashes'), { query })) ?? [];
  const newest = [...crashed].sort((a, b) => b.since - a.since)[0];
  if (newest !== undefined) return newest.instance;
  throw new CliError(`app "${name}" has no running or crashed instance to look into`);
}

function filesPath(name: string, instance: string, path: string): string {
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new CliError('PATH must stay inside the instance directory (no ..)');
  return appPath(name, `/instances/${encodeURIComponent(instance)}/files/${segments.map(encodeURIComponent).join('/')}`);
}

async function fetchFile(api: Api, name: string, instance: string, path: string, query: Query): Promise<IncomingMessage> {
  try {
    return await api.stream('GET', filesPath(name, instance, path), { query });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      throw new CliError(`${path || '/'}: ${error.message} (app "${name}", instance ${instance})`);
    }
    throw error;
  }
}

function isDirectoryListing(response: IncomingMessage): boolean {
  return /^application\/json\b/i.test(response.headers['content-type'] ?? '');
}

export async function files(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 2, 'skiff files N [PATH] [--instance I]');
  const name = checkAppName(positionals[0]);
  const path = positionals[1] ?? '';
  const api = ctx.api();
  const query = groupQuery(values.group);
  const instance = await pickInstance(api, name, query, values.instance).catch(notFoundAs(name));
  const response = await fetchFile(api, name, instance, path, query);
  if (!isDirectoryListing(response)) {
    await pipeToOutput(response, ctx.out);
    return 0;
  }
  const listing = JSON.parse((await readBody(response, 64 * 1024 * 1024)).toString('utf8')) as { entries?: Array<{ name: string; type: string; size?: number }> };
  if (values.json) {
    ctx.printJson(listing);
    return 0;
  }
  const entries = [...(listing.entries ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  ctx.print(formatTable(['NAME', 'SIZE'], entries.map((e) => (e.type === 'directory' ? [`${e.name}/`, '-'] : [e.name, formatBytes(e.size ?? 0)]))));
  return 0;
}

function pipeToOutput(response: IncomingMessage, out: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    response.on('data', (chunk: Buffer) => {
      if (!out.write(chunk)) {
        response.pause();
        out.once('drain', () => response.resume());
      }
    });
    response.on('end', () => resolve());
    response.on('error', reject);
    response.on('aborted', () => reject(new CliError('the download was cut off')));
  });
}

export const LOG_FILES = ['logs/stdout.log', 'logs/stderr.log'] as const;
const FILE_SIZE_HEADER = 'x-skiff-file-size';

interface LogCursor {
  path: string;
  /** Bytes of the file already printed (its size at the last look). */
  seen: number;
}

export async function logs(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  checkPositionals(positionals, 1, 'skiff logs N [--instance I] [--follow]');
  const name = checkAppName(positionals[0]);
  const tail = values.tail !== undefined ? checkWholeNumber(values.tail, '--tail', 0) : 65536;
  const api = ctx.api();
  const query = groupQuery(values.group);
  const instance = await pickInstance(api, name, query, values.instance).catch(notFoundAs(name));
  const cursors: LogCursor[] = [];
  let lastHeader: string | undefined;
  const header = (path: string) => {
    if (lastHeader === path) return;
    lastHeader = path;
    ctx.print(`==> ${path} <==`);
  };
  for (const path of LOG_FILES) {
    const read = await readLog(api, name, instance, path, { ...query, tail });
    if (read === undefined) {
      ctx.note(`(no ${path} on instance ${instance})`);
      cursors.push({ path, seen: 0 });
      continue;
    }
    header(path);
    ctx.out.write(read.data);
    if (read.data.length > 0 && read.data[read.data.length - 1] !== 0x0a) ctx.print('');
    cursors.push({ path, seen: read.size ?? (await readLog(api, name, instance, path, query))?.data.length ?? 0 });
  }
  if (!values.follow) return 0;

  let stopped = false;
  const stop = () => (stopped = true);
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let failing = false;
  try {
    while (!stopped) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      for (const cursor of cursors) {
        if (stopped) break;
        try {
          const fresh = await readNew(api, name, instance, cursor, query);
          failing = false;
          if (fresh.length > 0) {
            header(cursor.path);
            ctx.out.write(fresh);
          }
        } catch (error) {
          // Instances come and go while following; say so once, keep trying.
          if (!failing) ctx.note(`(waiting for instance ${instance}: ${(error as Error).message})`);
          failing = true;
        }
      }
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return 0;
}

async function readLog(api: Api, name: string, instance: string, path: string, query: Query): Promise<{ data: Buffer; size?: number } | undefined> {
  let response: IncomingMessage;
  try {
    response = await api.stream('GET', filesPath(name, instance, path), { query });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return undefined;
    throw error;
  }
  const data = await readBody(response, 64 * 1024 * 1024);
  const size = Number(response.headers[FILE_SIZE_HEADER]);
  return { data, size: Number.isInteger(size) && size >= 0 ? size : undefined };
}

/**
 * Bytes appended since the last look. Asks with `?offset=`; a server that
 * does not report X-Skiff-File-Size is taken to have sent the whole file.
 * A file that shrank was started over (a restarted instance): all of it is new.
 */
export async function readNew(api: Api, name: string, instance: string, cursor: LogCursor, query: Query): Promise<Buffer> {
  const read = await readLog(api, name, instance, cursor.path, { ...query, offset: cursor.seen });
  if (read === undefined) return Buffer.alloc(0);
  if (read.size === undefined) {
    const whole = read.data;
    const fresh = whole.length >= cursor.seen ? whole.subarray(cursor.seen) : whole;
    cursor.seen = whole.length;
    return fresh;
  }
  if (read.size < cursor.seen) {
    cursor.seen = 0;
    const again = await readLog(api, name, instance, cursor.path, query);
    cursor.seen = again?.size ?? again?.data.length ?? 0;
    return again?.data ?? Buffer.alloc(0);
  }
  cursor.seen += read.data.length;
  return read.data;
}
