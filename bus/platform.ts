// Names and formats shared by the controller, stager, DEA, health manager and
// CLI beyond the CF messages of protocol.md. One place, so that no role
// spells a bucket or a subject by hand.

/** JetStream object stores. */
export const ObjectStores = {
  /** Uploaded app packages (zip or tar.gz as the user sent them); object name: bitsObjectName(). */
  bits: 'skiff_bits',
  /** Staged droplets (see DROPLET_LAYOUT); object name: the droplet's sha1, hex. */
  droplets: 'skiff_droplets',
} as const;

export function bitsObjectName(appId: string, sha256: string): string {
  return `${appId}.${sha256}`;
}

/**
 * A droplet is a gzipped tar with:
 *   droplet.json  {"runtime","framework","start_command"} (DropletInfo)
 *   app/          the staged app (dependencies installed), the start
 *                 command's working directory
 * The DEA unpacks it into the instance directory and runs
 * `/bin/sh -c <start_command>` in `app/`.
 */
export const DROPLET_INFO_FILE = 'droplet.json';
export const DROPLET_APP_DIR = 'app';

export interface DropletInfo {
  runtime: string;
  framework: string;
  start_command: string;
}

/**
 * Staging log lines, published by the stager while it works on a job, so
 * that the controller can stream them to `skiff push`. Payload: raw text
 * (one or more lines). The stager's reply still carries the whole log.
 */
export function stagingLogSubject(appId: string): string {
  return `staging.${appId}.log`;
}

/** Runtimes a DEA can offer (dea.advertise `runtimes`). */
export const RUNTIMES = ['node', 'python', 'static'] as const;

/** The `<queue>` of `vcap.stager.<queue>` that stagers serve and controllers use by default. */
export const DEFAULT_STAGER_QUEUE = 'default';
/** Queue group stagers join on that subject, so that one stager takes each job. */
export const STAGER_QUEUE_GROUP = 'stagers';

/**
 * Files of an instance, served by the DEA that runs (or ran) it, for the
 * controller's `/apps/:name/instances/:index/files/*path`, `skiff files` and
 * `skiff logs`. Request: FilesRequest; reply: FilesReply. Replies stay under
 * NATS's 1 MB payload limit: a file is read in slices of at most
 * FILES_MAX_SLICE bytes (ask again from `offset + length`).
 */
export function deaFilesSubject(deaId: string): string {
  return `dea.${deaId}.files`;
}
export const FILES_MAX_SLICE = 512 * 1024;

export interface FilesRequest {
  droplet: string;
  instance: string;
  /** Relative to the instance directory ("" or "/" is its root); never escapes it. */
  path: string;
  /** For files: where to start; negative counts from the end (tail). Default 0. */
  offset?: number;
  /** For files: at most this many bytes (capped at FILES_MAX_SLICE). */
  length?: number;
}
export type FilesReply =
  | { type: 'directory'; path: string; entries: Array<{ name: string; type: 'file' | 'directory'; size: number }> }
  | { type: 'file'; path: string; size: number; offset: number; data_base64: string }
  | { error: string; code: 'not_found' | 'bad_path' | 'unknown_instance' };

/**
 * Desired state of apps: JetStream KV bucket written by the controller, key =
 * app id, value = the controller's app record as JSON. Other roles (the
 * health manager) may read it; only the controller writes it.
 */
export const APPS_BUCKET = 'skiff_apps';

/**
 * The fields of an app record that roles other than the controller rely on;
 * the record holds more, which readers ignore.
 */
export interface AppDesiredState {
  id: string;
  name: string;
  state: 'STARTED' | 'STOPPED';
  instances: number;
  /** Sha1 of the current droplet; null before the first staging. */
  droplet: string | null;
  /** Bumped on each start, restart and new droplet. */
  run_count: number;
  /** Epoch seconds of the last change of desired state. */
  last_updated: number;
}

/** The version instances of the app's current desired state run: `<droplet sha1>-<run count>`. */
export function desiredVersion(app: Pick<AppDesiredState, 'droplet' | 'run_count'>): string | null {
  return app.droplet === null ? null : `${app.droplet}-${app.run_count}`;
}

/**
 * Published by the health manager that acts (the lease holder) when it gives
 * up on an index of an app version: from crash `giveup_crash_number` + 1
 * inside the flapping window it asks for no more restarts until the app
 * changes. Not a CF v1 message: one controller (queue group `cc`) records it
 * as the app event `gave_up`, so that `skiff events` says why nothing restarts.
 */
export const HM_GIVEUP_SUBJECT = 'healthmanager.giveup';

export interface HmGiveUp {
  droplet: string;
  version: string;
  index: number;
  /** Crashes counted in the flapping window when it gave up. */
  crashes: number;
}
