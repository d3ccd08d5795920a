// push: pack the directory, create or update the app from manifest.yml and
// flags, upload with a progress bar, stream the staging log, start, wait for
// the instances, print the URLs.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { AppBounds } from '../../bus/platform';
import { ApiError, type Api, type Query } from './api';
import { checkAppName, checkPositionals, checkUri, checkWholeNumber, UsageError } from './args';
import { getApp, memoryFlag, updateApp, waitAndShowUrls } from './apps';
import { getService } from './services';
import { policyFromFlags } from './autoscale';
import { appPath, CliError, groupQuery, type Context } from './context';
import { ManifestError, parseManifest, type AppManifest } from './manifest';
import { packApp, type PackedApp } from './pack';
import { progressReporter } from './progress';
import { describeFailure, type CommandArgs } from './registry';
import { formatBytes } from './size';
import { isStarted, type App, type Info } from './types';
import { platformDomain } from './urls';

const MANIFEST_FILES = ['manifest.yml', 'manifest.yaml'];
const STAGING_POLL_MS = 1000;

export async function push(ctx: Context, args: CommandArgs): Promise<number> {
  const { values, positionals } = args;
  checkPositionals(positionals, 1, 'skiff push [DIR] [--name N] [--instances K] [--memory MB] [--session-affinity | --no-session-affinity] [--no-start] [--min N --max M --target-rps R ...]');
  if (values['session-affinity'] && values['no-session-affinity']) throw new UsageError('give --session-affinity or --no-session-affinity, not both');
  const dir = resolve(positionals[0] ?? '.');
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${dir} is not a directory`);
  const wantedName = values.name as string | undefined;
  if (wantedName !== undefined) checkAppName(wantedName);
  const manifest = readManifest(dir, wantedName, (warning) => ctx.note(`warning: ${warning}`));

  const name = checkAppName(wantedName ?? manifest.name ?? basename(dir), wantedName ?? manifest.name ? 'app name' : `app name (from the directory; pass --name)`);
  const desired: Record<string, unknown> = {};
  const instances = values.instances ?? manifest.instances;
  if (instances !== undefined) desired.instances = checkWholeNumber(instances, '--instances', 0, AppBounds.maxInstances);
  const memory = values.memory !== undefined ? memoryFlag(values.memory) : manifest.memoryMb;
  if (memory !== undefined) desired.memory = memory;
  if (manifest.command !== undefined) desired.command = manifest.command;
  if (manifest.env !== undefined) desired.env = manifest.env;
  const affinity = values['session-affinity'] ? true : values['no-session-affinity'] ? false : manifest.sessionAffinity;
  if (affinity !== undefined) desired.session_affinity = affinity;
  // Flags over the manifest's policy, field by field, as for the other fields.
  const policy = policyFromFlags(values, manifest.autoscale) ?? manifest.autoscale;
  if (policy !== undefined) {
    desired.autoscale = policy;
    // The policy's range governs the count; an explicit count outside it is the API's 400, said before anything is sent.
    if (desired.instances !== undefined && ((desired.instances as number) < policy.min || (desired.instances as number) > policy.max)) {
      throw new UsageError(`--instances ${desired.instances as number} is outside the autoscale policy's ${policy.min}-${policy.max}`);
    }
  }

  const api = ctx.api();
  const query = groupQuery(values.group);
  // push makes no services: the manifest's must exist, before anything is created or uploaded.
  for (const service of manifest.services ?? []) await requireService(api, service, query);
  if (manifest.uris !== undefined) desired.uris = manifest.uris;
  else if (manifest.hosts !== undefined) desired.uris = await hostsOnPlatformDomain(api, manifest.hosts);

  // Packed first: an empty directory is refused before anything exists on the platform.
  const packed = await packApp(dir);
  let app: App | undefined;
  let created = false;
  let wasStarted = false;
  let versionBefore: string | null | undefined = null;
  try {
    app = await findApp(api, name, query);
    wasStarted = isStarted(app);
    versionBefore = app?.version ?? null;
    // The manifest's services join those the app has (as cf push binds them); none is unbound.
    const missing = (manifest.services ?? []).filter((s) => !(app?.services ?? []).includes(s));
    if (missing.length > 0) desired.services = [...(app?.services ?? []), ...missing];
    if (app === undefined) {
      app = await api.json<App>('POST', '/apps', { query, body: { name, ...desired } }).catch((error: unknown) => {
        if (error instanceof ApiError && error.status === 409) throw new CliError(`the name "${name}" is taken: pick another with --name`);
        throw error;
      });
      created = true;
      ctx.print(`created ${name}`);
    } else if (Object.keys(desired).length > 0) {
      app = await updateApp(api, name, query, desired);
      ctx.print(`updated ${name}`);
    } else {
      ctx.print(`pushing a new version of ${name}`);
    }
    app = await uploadAndStage(ctx, api, name, query, packed, (values.timeout as number | undefined) ?? 600, wasStarted);
  } catch (error) {
    // An app this push created and could not stage is of no use to anyone: a retry starts clean.
    if (created) throw await forget(api, name, query, error);
    throw error;
  } finally {
    packed.dispose();
  }
  if (values['no-start']) {
    ctx.print(`${name} is staged and not started: skiff start ${name}`);
    return 0;
  }
  if (!isStarted(app)) app = await updateApp(api, name, query, { state: 'STARTED' });
  ctx.print(`starting ${name}`);
  await waitAndShowUrls(ctx, api, app, query, args, versionBefore);
  return 0;
}

async function uploadAndStage(ctx: Context, api: Api, name: string, query: Query, packed: PackedApp, timeoutS: number, wasStarted: boolean): Promise<App> {
  ctx.note(`packed ${packed.fileCount} file${packed.fileCount === 1 ? '' : 's'} (${formatBytes(packed.size)})`);
  const progress = progressReporter(ctx.err, packed.size, ctx.err.isTTY === true);
  await api
    .upload(appPath(name, '/application') + queryString(query), packed.path, packed.size, { 'Content-Type': 'application/gzip', 'X-Skiff-Sha256': packed.sha256 }, (sent) =>
      progress.update(sent),
    )
    .catch((error: unknown) => {
      if (error instanceof ApiError && error.status === 413) throw new CliError(`the app is too large to upload (${formatBytes(packed.size)} packed): ${error.message}`);
      throw error;
    });
  progress.done();
  const { app, log } = await followStaging(ctx, api, name, query, timeoutS);
  if (app.package_state === 'FAILED') {
    const error = app.staging_error ?? 'no reason given';
    // The staging log already ends with the reason when the stager gave it: once is enough.
    const why = log.includes(error) ? 'staging failed (the reason is in the log above)' : `staging failed: ${error}`;
    throw new CliError(`${why}${wasStarted ? '; the previous version keeps running' : ''}`);
  }
  return app;
}

/** Deletes the app a failed push created; the error says so, or how to do it by hand. */
async function forget(api: Api, name: string, query: Query, error: unknown): Promise<CliError> {
  const message = describeFailure(error).message;
  try {
    await api.json('DELETE', appPath(name), { query });
    return new CliError(`${message}; ${name} was removed again (this push had created it)`);
  } catch (deleteError) {
    return new CliError(`${message}; ${name} was created by this push and could not be removed (${describeFailure(deleteError).message}): skiff delete ${name}`);
  }
}

function readManifest(dir: string, wantedName: string | undefined, warn: (message: string) => void): AppManifest {
  const file = MANIFEST_FILES.map((name) => join(dir, name)).find((path) => existsSync(path));
  if (file === undefined) return {};
  try {
    return parseManifest(readFileSync(file, 'utf8'), wantedName, warn);
  } catch (error) {
    if (error instanceof ManifestError) throw new UsageError(error.message);
    throw error;
  }
}

async function hostsOnPlatformDomain(api: Api, hosts: string[]): Promise<string[]> {
  const info = await api.json<Info>('GET', '/info');
  const domain = platformDomain(info ?? {});
  if (domain === undefined) throw new CliError('manifest.yml gives host without domain, and the API does not say its domain: add domain: to the manifest');
  return hosts.map((host) => checkUri(`${host}.${domain}`));
}

async function requireService(api: Api, name: string, query: Query): Promise<void> {
  await getService(api, name, query).catch((error: unknown) => {
    if (error instanceof CliError && /^unknown service/.test(error.message)) {
      throw new CliError(`manifest.yml names the service "${name}", which does not exist: create it first (skiff create-service SERVICE ${name}); push creates no services`);
    }
    throw error;
  });
}

async function findApp(api: Api, name: string, query: Query): Promise<App | undefined> {
  try {
    return await getApp(api, name, query);
  } catch (error) {
    if (error instanceof CliError && /^unknown app/.test(error.message)) return undefined;
    throw error;
  }
}

function queryString(query: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

/** Streams the staging log to stdout, then waits until the API reports the outcome; returns the log as shown. */
async function followStaging(ctx: Context, api: Api, name: string, query: Query, timeoutS: number): Promise<{ app: App; log: string }> {
  ctx.print('staging:');
  let log = '';
  try {
    const response = await api.stream('GET', appPath(name, '/staging_log'), { query, idleTimeoutMs: timeoutS * 1000 });
    let endedWithNewline = true;
    await new Promise<void>((resolvePromise, reject) => {
      response.on('data', (chunk: Buffer) => {
        ctx.out.write(chunk);
        log += chunk.toString('utf8');
        endedWithNewline = chunk[chunk.length - 1] === 0x0a;
      });
      response.on('end', () => resolvePromise());
      response.on('error', reject);
      response.on('aborted', () => reject(new Error('the staging log was cut off')));
    });
    if (!endedWithNewline) ctx.print('');
  } catch (error) {
    // The outcome still comes from the app's state; losing the log is not fatal.
    ctx.note(`(staging log unavailable: ${(error as Error).message})`);
  }
  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    const app = await getApp(api, name, query);
    if (app.package_state !== 'STAGING' && app.package_state !== 'PENDING') return { app, log };
    if (Date.now() >= deadline) throw new CliError(`staging of ${name} did not finish within ${timeoutS} s (package state ${app.package_state})`);
    await new Promise((r) => setTimeout(r, STAGING_POLL_MS));
  }
}
