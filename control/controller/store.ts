// All controller state lives in JetStream: KV buckets for users, apps, crash
// records, staging logs and the token secret; object stores for bits and
// droplets. Nothing is cached, so controllers restarted or running side by
// side see the same state. Read-modify-write goes through KV revisions
// (`update` with the expected revision, retried), so concurrent controllers
// never lose each other's writes.

import type { AutoscalePolicy } from '../../bus/autoscale';
import { randomBytes, randomInt } from 'node:crypto';
import type { KV, KvEntry, ObjectStore } from 'nats';
import type { Bus } from '../../bus/connection';
import { APPS_BUCKET, ObjectStores } from '../../bus/platform';
import type { PasswordHash } from './auth';
import { openKv, openObjectStore, isLive, isRevisionConflict, liveEntries, liveKeys, storedKeys } from '../../bus/jetstream';

export const Buckets = {
  users: 'skiff_users',
  apps: APPS_BUCKET,
  appNames: 'skiff_app_names',
  crashes: 'skiff_crashes',
  stagingLogs: 'skiff_staging_logs',
  /** One key per event: `<app id>.<epoch ms, 15 digits>.<random>`, so keys sort by time. */
  events: 'skiff_events',
  meta: 'skiff_controller',
  /** Failed logins per email (key: emailKey), for the login lockout (lockout.ts); entries expire. */
  logins: 'skiff_logins',
  /** Apps' uids: `uid.<n>` -> the app holding it, and the allocation cursor (uids.ts). */
  appUids: 'skiff_app_uids',
} as const;

/** Events listed per app (the newest). */
export const MAX_EVENTS = 200;

/** One entry of an app's history (`skiff events`). */
export interface AppEvent {
  /** Epoch seconds. */
  time: number;
  /** created, pushed, staged, staging_failed, started, stopped, scaled, updated, restarted, bound, unbound, crashed, hm_restarted, hm_stopped, deleted. */
  type: string;
  description: string;
  /** Who asked: a user's email, or "health manager", or "platform". */
  actor: string;
}

export const TOKEN_SECRET_KEY = 'token_secret';
/** Crash records kept per app (newest last). */
export const MAX_CRASHES = 50;
/** The last staging log kept per app, in bytes (its tail). */
export const MAX_STORED_LOG = 256 * 1024;

export interface UserRecord {
  email: string;
  admin: boolean;
  password: PasswordHash;
  created: number;
  /** Bumped by each password change; tokens carry the one they were issued with (absent = 0). */
  token_generation?: number;
}

export type PackageState = 'PENDING' | 'STAGING' | 'STAGED' | 'FAILED';

export interface AppRecord {
  id: string;
  name: string;
  owner: string;
  state: 'STARTED' | 'STOPPED';
  instances: number;
  memory: number;
  /** MB */
  disk: number;
  uris: string[];
  env: Record<string, string>;
  command: string | null;
  package_state: PackageState;
  staging_error: string | null;
  /** Sha1 of the current droplet. */
  droplet: string | null;
  droplet_object: string | null;
  staging: { runtime: string; framework: string; command: string } | null;
  bits: { object: string; sha256: string; size: number } | null;
  /** Identifies the staging job in flight, so a superseded job's result is dropped. */
  staging_id: string | null;
  /** Epoch seconds the job in flight began; a job older than the staging timeout was lost (its controller died). */
  staging_started?: number;
  /** Bumped on each start, restart and new droplet: version = `<droplet>-<run_count>`. */
  run_count: number;
  /** Epoch seconds of the last change of desired state (health manager STOP requests must match it). */
  last_updated: number;
  /**
   * The app's own unprivileged uid (uids.ts), sent to DEAs in dea.<uuid>.start.
   * Absent on apps created before uids existed: they get one when next placed.
   */
  uid?: number;
  /**
   * The router pins each client to one instance with its __VCAP_ID__ cookie
   * (design.md: session affinity). Absent on apps from before it: false.
   */
  session_affinity?: boolean;
  /**
   * Why the last placement left indices of the app without a DEA (e.g. no
   * DEA with room); null or absent once every index found one. Kept in KV so
   * that every controller's view shows it.
   */
  placement_error?: string | null;
  /**
   * Ids of the service instances bound to the app (services.ts), in the
   * order the user gave them; absent: none. Only ids: the credentials are in
   * the bindings bucket, which only the controller reads.
   */
  services?: string[];
  /**
   * The autoscale policy (`skiff autoscale`, manifest.yml `autoscale:`); the
   * health manager's autoscaler keeps `instances` within it. Absent or null: off.
   */
  autoscale?: AutoscalePolicy | null;
  created: number;
  updated: number;
}

export interface CrashRecord {
  instance: string;
  index: number;
  since: number;
  reason: string;
  exit_status: number | null;
}

export function appVersion(app: AppRecord): string | null {
  return app.droplet === null ? null : `${app.droplet}-${app.run_count}`;
}

/** KV keys allow only [-/_=.a-zA-Z0-9]; emails carry '@' and '+'. */
export function emailKey(email: string): string {
  return Buffer.from(email, 'utf8').toString('base64url');
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function parse<T>(entry: KvEntry): T {
  return JSON.parse(decoder.decode(entry.value)) as T;
}

function encode(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Concurrent writers: how often a read-modify-write is retried before giving up. */
const CAS_ATTEMPTS = 20;

export class ConflictError extends Error {}

export class Store {
  private constructor(
    private readonly users: KV,
    private readonly apps: KV,
    private readonly appNames: KV,
    private readonly crashLog: KV,
    private readonly stagingLogs: KV,
    private readonly eventLog: KV,
    private readonly meta: KV,
    readonly bits: ObjectStore,
    readonly droplets: ObjectStore,
  ) {}

  static async open(bus: Bus, timeoutMs = 10_000): Promise<Store> {
    const js = bus.nats.jetstream({ timeout: timeoutMs });
    const kv = (name: string) => openKv(js, name, { history: 1 });
    try {
      const [users, apps, appNames, crashes, logs, events, meta, bits, droplets] = await Promise.all([
        kv(Buckets.users),
        kv(Buckets.apps),
        kv(Buckets.appNames),
        kv(Buckets.crashes),
        kv(Buckets.stagingLogs),
        kv(Buckets.events),
        kv(Buckets.meta),
        openObjectStore(js, ObjectStores.bits),
        openObjectStore(js, ObjectStores.droplets),
      ]);
      return new Store(users, apps, appNames, crashes, logs, events, meta, bits, droplets);
    } catch (err) {
      throw new Error(`cannot open the controller's JetStream buckets (is nats-server running with -js?): ${(err as Error).message}`, { cause: err });
    }
  }

  /** The HMAC secret for tokens, created by whichever controller comes first. */
  async tokenSecret(): Promise<Buffer> {
    const existing = await this.meta.get(TOKEN_SECRET_KEY);
    if (isLive(existing)) return Buffer.from(decoder.decode(existing.value), 'base64');
    try {
      await this.meta.create(TOKEN_SECRET_KEY, encoder.encode(randomBytes(32).toString('base64')));
    } catch {
      // Another controller created it first: use theirs.
    }
    const entry = await this.meta.get(TOKEN_SECRET_KEY);
    if (!isLive(entry)) throw new Error('token secret missing from the KV store');
    return Buffer.from(decoder.decode(entry.value), 'base64');
  }

  /**
   * A lease for jobs one controller should do at a time (the reconcile pass):
   * true when `holder` has it until `now + ttlMs`. Taken over once expired.
   */
  async lease(name: string, holder: string, now: number, ttlMs: number): Promise<boolean> {
    const key = `lease.${name}`;
    const value = encode({ holder, until: now + ttlMs });
    const entry = await this.meta.get(key);
    try {
      if (!isLive(entry)) {
        await this.meta.create(key, value);
        return true;
      }
      const current = parse<{ holder: string; until: number }>(entry);
      if (current.holder !== holder && current.until > now) return false;
      await this.meta.update(key, value, entry.revision);
      return true;
    } catch (err) {
      if (isRevisionConflict(err)) return false;
      throw err;
    }
  }

  /** Gives a lease up (a controller stopping), so that another controller need not wait out its time. */
  async releaseLease(name: string, holder: string): Promise<void> {
    const key = `lease.${name}`;
    const entry = await this.meta.get(key);
    if (!isLive(entry) || parse<{ holder: string }>(entry).holder !== holder) return;
    try {
      await this.meta.delete(key, { previousSeq: entry.revision });
    } catch (err) {
      if (!isRevisionConflict(err)) throw err;
    }
  }

  // ---- users ----

  async getUser(email: string): Promise<UserRecord | undefined> {
    const entry = await this.users.get(emailKey(email));
    return isLive(entry) ? parse<UserRecord>(entry) : undefined;
  }

  async listUsers(): Promise<UserRecord[]> {
    return this.all<UserRecord>(this.users);
  }

  /**
   * False when the email is taken. A new user's token generation starts at
   * random: tokens of a deleted user of the same email must not come back.
   */
  async createUser(user: UserRecord): Promise<boolean> {
    try {
      await this.users.create(emailKey(user.email), encode({ ...user, token_generation: user.token_generation ?? randomInt(1, 2 ** 31) }));
      return true;
    } catch (err) {
      if (await this.getUser(user.email)) return false;
      throw err;
    }
  }

  /**
   * Read-modify-write of one user, like updateApp: `change` may run more
   * than once when another controller writes in between. Undefined when the
   * user is gone.
   */
  async updateUser(email: string, change: (user: UserRecord) => UserRecord): Promise<UserRecord | undefined> {
    const key = emailKey(email);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await this.users.get(key);
      if (!isLive(entry)) return undefined;
      const after = change(parse<UserRecord>(entry));
      try {
        await this.users.update(key, encode(after), entry.revision);
        return after;
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
      }
    }
    throw new ConflictError(`user ${email}: too many concurrent changes, try again`);
  }

  /** A new password, and a new token generation so that every earlier token stops working. */
  async setPassword(email: string, password: PasswordHash): Promise<UserRecord | undefined> {
    return this.updateUser(email, (user) => ({ ...user, password, token_generation: (user.token_generation ?? 0) + 1 }));
  }

  async deleteUser(email: string): Promise<void> {
    await this.users.delete(emailKey(email));
  }

  async hasUsers(): Promise<boolean> {
    return (await liveKeys(this.users)).length > 0;
  }

  // ---- apps ----

  async getApp(id: string): Promise<AppRecord | undefined> {
    const entry = await this.apps.get(id);
    return isLive(entry) ? parse<AppRecord>(entry) : undefined;
  }

  async getAppByName(name: string): Promise<AppRecord | undefined> {
    const entry = await this.appNames.get(name);
    if (!isLive(entry)) return undefined;
    return this.getApp(decoder.decode(entry.value));
  }

  async listApps(): Promise<AppRecord[]> {
    return (await this.all<AppRecord>(this.apps)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** False when the name is taken (names are unique on the platform: they are host names). */
  async createApp(app: AppRecord): Promise<boolean> {
    try {
      await this.appNames.create(app.name, encoder.encode(app.id));
    } catch (err) {
      if (isLive(await this.appNames.get(app.name))) return false;
      throw err;
    }
    try {
      await this.apps.create(app.id, encode(app));
    } catch (err) {
      await this.appNames.delete(app.name).catch(() => {});
      throw err;
    }
    return true;
  }

  /**
   * Read-modify-write of one app. `change` gets the current record and
   * returns the new one, or undefined to leave it as it is; it may run more
   * than once when another controller writes in between. Resolves with
   * {before, after}, or undefined when the app is gone.
   */
  async updateApp(id: string, change: (app: AppRecord) => AppRecord | undefined): Promise<{ before: AppRecord; after: AppRecord } | undefined> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await this.apps.get(id);
      if (!isLive(entry)) return undefined;
      const before = parse<AppRecord>(entry);
      const after = change(structuredClone(before));
      if (after === undefined) return { before, after: before };
      try {
        await this.apps.update(id, encode(after), entry.revision);
        return { before, after };
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
      }
    }
    throw new ConflictError(`app ${id}: too many concurrent changes, try again`);
  }

  async deleteApp(app: AppRecord): Promise<void> {
    await this.apps.delete(app.id);
    const name = await this.appNames.get(app.name);
    // Only our own reservation: the name may have been taken anew meanwhile.
    if (isLive(name) && decoder.decode(name.value) === app.id) await this.appNames.delete(app.name);
    await this.crashLog.delete(app.id);
    await this.stagingLogs.delete(app.id);
    for (const key of await liveKeys(this.eventLog, `${app.id}.>`)) await this.eventLog.purge(key);
  }

  // ---- events ----

  /** Records one event of an app; never fails the action it describes. */
  async addEvent(appId: string, event: AppEvent): Promise<void> {
    const key = `${appId}.${String(Date.now()).padStart(15, '0')}.${Math.random().toString(36).slice(2, 8)}`;
    await this.eventLog.put(key, encode(event));
  }

  /** An app's events, oldest first (the newest MAX_EVENTS). */
  async events(appId: string): Promise<AppEvent[]> {
    // Events are never deleted one by one (all go with their app): the newest keys are the newest events.
    const keys = (await storedKeys(this.eventLog, `${appId}.>`)).slice(-MAX_EVENTS);
    const entries = await Promise.all(keys.map((key) => this.eventLog.get(key)));
    return entries.filter(isLive).map((entry) => parse<AppEvent>(entry));
  }

  // ---- crashes ----

  async addCrash(appId: string, crash: CrashRecord): Promise<void> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await this.crashLog.get(appId);
      const list = isLive(entry) ? parse<CrashRecord[]>(entry) : [];
      if (list.some((c) => c.instance === crash.instance && c.since === crash.since)) return;
      list.push(crash);
      const kept = list.slice(-MAX_CRASHES);
      try {
        if (isLive(entry)) await this.crashLog.update(appId, encode(kept), entry.revision);
        else await this.crashLog.create(appId, encode(kept));
        return;
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
      }
    }
    throw new ConflictError(`crashes of ${appId}: too many concurrent changes`);
  }

  async crashes(appId: string): Promise<CrashRecord[]> {
    const entry = await this.crashLog.get(appId);
    return isLive(entry) ? parse<CrashRecord[]>(entry) : [];
  }

  // ---- staging logs ----

  async putStagingLog(appId: string, log: string): Promise<void> {
    const bytes = Buffer.from(log, 'utf8');
    await this.stagingLogs.put(appId, bytes.length > MAX_STORED_LOG ? bytes.subarray(bytes.length - MAX_STORED_LOG) : bytes);
  }

  async stagingLog(appId: string): Promise<string> {
    const entry = await this.stagingLogs.get(appId);
    return isLive(entry) ? decoder.decode(entry.value) : '';
  }

  private async all<T>(kv: KV): Promise<T[]> {
    return (await liveEntries(kv)).map((entry) => parse<T>(entry));
  }
}

