// The REST API of design.md and control/API.md: routing, authentication,
// ownership, and the handlers. State goes to the Store; DEA work to the
// Lifecycle and Instances; staging to Staging.

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { BusRequestError, type Bus } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import type { DeaFindDropletReply } from '../../bus/messages';
import { NODE_NAME, NODE_ROLES, nodeRolesSubject, type NodeInfo, type NodeRolesRequest } from '../../bus/platform';
import { bitsObjectName, deaFilesSubject, FILES_MAX_SLICE, type FilesReply, type FilesRequest } from '../../bus/platform';
import { Subjects } from '../../bus/subjects';
import { RejectionCounter } from '../../bus/validate';
import { knownSetting } from '../../bus/settings';
import { SKIFF_VERSION } from '../../bus/version';
import { AUTOSCALE_WINDOW_MS, autoscaleFigures, type AppStatsCollector } from '../../bus/app-stats';
import { basicCredentials, bearerToken, checkPassword, cookieToken, hashPassword, signToken, verifyToken, CONSOLE_HEADER, type PasswordHash } from './auth';
import { ConsoleRoutes } from './console';
import { apiDuration, apiRequests, clusterMetrics, METRICS_CONTENT_TYPE } from './metrics';
import type { ClusterConfig } from './cluster-config';
import type { NodeWatch } from './nodes';
import { applyChange, applyRestart, appServices, sessionAffinity } from './desired';
import { describeChange, recordEvents, type EventDraft } from './events';
import { nodeFailure, ServiceRoutes } from './service-routes';
import type { ServiceBindings, ServiceRecord } from './services';
import { askFlapping, shownState, type FlappingAnswer } from './hm_status';
import { HttpError, type Exchange } from './http';
import type { Instances } from './instances';
import type { Lifecycle } from './lifecycle';
import type { LockState, LoginLockout } from './lockout';
import type { Staging } from './staging';
import { appVersion, ConflictError, type AppRecord, type Store, type UserRecord } from './store';
import { receivePackage } from './upload';
import { UidsExhaustedError, type AppUids } from './uids';
import { checkAppChange, checkLogin, checkNewApp, checkNewUser, checkPasswordChange, isEmail, normalizeEmail } from './validation';

export interface ApiOptions {
  domain: string;
  /** Where apps are reached, for /info. */
  routerUrl: string;
  maxUploadBytes: number;
  uploadDir: string;
  /** Per non-admin user. */
  limits: { memory: number; apps: number };
  defaultDiskMb: number;
}

export interface ApiDeps {
  bus: Bus;
  store: Store;
  secret: Buffer;
  /** Failed logins per email, shared by all controllers. */
  lockout: LoginLockout;
  lifecycle: Lifecycle;
  staging: Staging;
  instances: Instances;
  log: Logger;
  /** One uid per app, taken at create, given back at delete. */
  uids: AppUids;
  /** The config store, for `/config`. */
  config: ClusterConfig;
  /** What the components say of themselves, for `/nodes`. */
  nodes: NodeWatch;
  /** Data services: their records, bindings and nodes. */
  services: ServiceBindings;
  /** What routers and DEAs report per app, for `/metrics` and the console. */
  stats: AppStatsCollector;
}

type Params = Record<string, string>;
type Route = { method: string; pattern: string[]; handle: (e: Exchange, p: Params) => Promise<void> };
/** The `route` label of a request no route took (404, 405, a bad path). */
const UNMATCHED_ROUTE = 'none';

const nowSeconds = () => Math.floor(Date.now() / 1000);
const FILES_TIMEOUT_MS = 5000;
const MAX_FILE_STREAM = 64 * 1024 * 1024;
/** An app view waits this long for the health manager's FLAPPING answer; without one it shows the desired state. */
const HM_VIEW_TIMEOUT_MS = 500;
/** A role stopping on a node (a DEA with its instances) takes up to its grace periods. */
const NODE_ROLES_TIMEOUT_MS = 40_000;

export class Api {
  private readonly routes: Route[] = [];
  /** Checked against when the email is unknown, so a login takes as long for a missing user as for a wrong password. */
  private dummyHash: Promise<PasswordHash> | undefined;
  /** Malformed health manager answers met while building app views. */
  private readonly rejections: RejectionCounter;
  private readonly serviceRoutes: ServiceRoutes;

  readonly console: ConsoleRoutes;

  constructor(
    private readonly deps: ApiDeps,
    private readonly options: ApiOptions,
  ) {
    this.rejections = new RejectionCounter(deps.log);
    this.serviceRoutes = new ServiceRoutes(
      {
        authenticate: (e) => this.authenticate(e),
        actingFor: (e, user) => this.actingFor(e, user),
        unbindFromApp: (app, service, actor) => this.unbindFromApp(app, service, actor),
      },
      deps.services,
      deps.store,
      deps.log,
    );
    const r = (method: string, path: string, handle: Route['handle']) => this.routes.push({ method, pattern: path.split('/').filter(Boolean), handle });
    this.console = new ConsoleRoutes(this, deps.stats, deps.log);
    r('GET', '/info', (e) => this.info(e));
    r('GET', '/info/services', (e) => this.serviceRoutes.offerings(e));
    r('GET', '/services', (e) => this.serviceRoutes.list(e));
    r('POST', '/services', (e) => this.serviceRoutes.create(e));
    r('GET', '/services/:name', (e, p) => this.serviceRoutes.show(e, p.name!));
    r('DELETE', '/services/:name', (e, p) => this.serviceRoutes.remove(e, p.name!));
    r('GET', '/metrics', (e) => this.metrics(e));
    this.console.addRoutes(r);
    r('POST', '/users/:email/tokens', (e, p) => this.login(e, p.email!));
    r('GET', '/users', (e) => this.listUsers(e));
    r('GET', '/nodes/:node', (e, p) => this.nodeRoles(e, p.node!, { op: 'info' }));
    r('PUT', '/nodes/:node/roles/:role', (e, p) => this.nodeRoles(e, p.node!, { op: 'add', role: p.role! }));
    r('DELETE', '/nodes/:node/roles/:role', (e, p) => this.nodeRoles(e, p.node!, { op: 'remove', role: p.role! }));
    r('POST', '/users', (e) => this.addUser(e));
    r('DELETE', '/users/:email', (e, p) => this.deleteUser(e, p.email!));
    r('PUT', '/users/:email/password', (e, p) => this.changePassword(e, p.email!));
    r('GET', '/apps', (e) => this.listApps(e));
    r('POST', '/apps', (e) => this.createApp(e));
    r('GET', '/apps/:name', (e, p) => this.showApp(e, p.name!));
    r('PUT', '/apps/:name', (e, p) => this.updateApp(e, p.name!));
    r('DELETE', '/apps/:name', (e, p) => this.deleteApp(e, p.name!));
    r('POST', '/apps/:name/restart', (e, p) => this.restartApp(e, p.name!));
    r('PUT', '/apps/:name/application', (e, p) => this.upload(e, p.name!));
    r('POST', '/apps/:name/application', (e, p) => this.upload(e, p.name!));
    r('GET', '/apps/:name/staging_log', (e, p) => this.stagingLog(e, p.name!));
    r('GET', '/apps/:name/instances', (e, p) => this.listInstances(e, p.name!));
    r('GET', '/apps/:name/stats', (e, p) => this.stats(e, p.name!));
    r('GET', '/apps/:name/autoscale', (e, p) => this.autoscaleNow(e, p.name!));
    r('GET', '/apps/:name/crashes', (e, p) => this.crashes(e, p.name!));
    r('GET', '/apps/:name/events', (e, p) => this.events(e, p.name!));
    r('GET', '/apps/:name/bench', (e, p) => this.benchPlan(e, p.name!));
    r('GET', '/apps/:name/instances/:index/files/*', (e, p) => this.files(e, p.name!, p.index!, p['*']!));
    r('GET', '/nodes', async (e) => {
      await this.admin(e);
      e.json(200, await this.deps.nodes.list());
    });
    r('GET', '/config', (e) => this.listConfig(e));
    r('GET', '/config/:key', (e, p) => this.getConfig(e, p.key!));
    r('PUT', '/config/:key', (e, p) => this.setConfig(e, p.key!));
    r('DELETE', '/config/:key', (e, p) => this.unsetConfig(e, p.key!));
    // Upgrades are taken by the WebSocket route (ssh.ts); a plain GET lands here.
    r('GET', '/apps/:name/instances/:index/ssh', async (e, p) => {
      await this.findApp(e, p.name!);
      throw new HttpError(400, 'ssh needs a WebSocket: send Upgrade: websocket (skiff ssh does)');
    });
  }

  /** Routes the request, and counts it once answered (skiff_controller_http_*). */
  async handle(e: Exchange): Promise<void> {
    const end = apiDuration.startTimer({ method: e.method });
    // The route's pattern, not the path: one series per endpoint, whatever the app names.
    const matched = { route: UNMATCHED_ROUTE };
    e.onHead((status) => {
      end();
      apiRequests.inc({ method: e.method, route: matched.route, code: String(status) });
    });
    await this.route(e, matched);
  }

  private async route(e: Exchange, matched: { route: string }): Promise<void> {
    let segments: string[];
    try {
      segments = e.path.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
    } catch {
      throw new HttpError(400, 'the path is not valid percent-encoding');
    }
    let pathMatched = false;
    for (const route of this.routes) {
      const params = match(route.pattern, segments);
      if (params === undefined) continue;
      pathMatched = true;
      if (route.method !== e.method) continue;
      matched.route = `/${route.pattern.join('/')}`;
      await route.handle(e, params);
      return;
    }
    if (pathMatched) throw new HttpError(405, `${e.method} is not allowed on ${e.path}`);
    throw new HttpError(404, `no such endpoint: ${e.path}`);
  }

  /** Turns any failure into the API's error shape; internals are logged, not sent. */
  fail(error: unknown, e: Exchange): void {
    if (error instanceof HttpError) {
      if (e.isStreaming) e.end();
      // A client still sending a body we refused: close, or it would wait to be read.
      e.send(error.status, JSON.stringify({ code: error.code, description: error.message }), { ...error.headers, 'Content-Type': 'application/json' }, error.status === 413);
      return;
    }
    if (error instanceof ConflictError) {
      e.error(409, error.message);
      return;
    }
    this.deps.log.error('request failed', { method: e.method, path: e.path, error });
    if (e.isStreaming) e.end();
    else e.error(500, 'internal error (see the controller log)');
  }

  // ---- auth ----

  /**
   * The caller, from `Authorization: Bearer`, else from the console's
   * cookie. The cookie counts for reads, and for changes only with the
   * X-Skiff-Console header: a page of an app on a sibling host (same site,
   * so SameSite lets the cookie go) cannot send that header to the API
   * without a CORS preflight, which the API never grants.
   */
  async authenticate(e: Exchange): Promise<UserRecord> {
    let token = bearerToken(e.headers.authorization);
    if (token === undefined) {
      const cookie = cookieToken(e.headers.cookie);
      if (cookie !== undefined && (e.method === 'GET' || e.method === 'HEAD' || e.headers[CONSOLE_HEADER] === '1')) token = cookie;
    }
    if (token === undefined) throw new HttpError(401, 'not logged in: send Authorization: Bearer <token> (skiff login)');
    const check = verifyToken(this.deps.secret, token, nowSeconds());
    if (!check.ok) throw new HttpError(401, check.reason === 'expired' ? 'the token has expired: log in again' : 'invalid token: log in again');
    const user = await this.deps.store.getUser(check.claims.email);
    if (user === undefined) throw new HttpError(401, 'the user of this token no longer exists');
    if (check.claims.generation !== (user.token_generation ?? 0)) throw new HttpError(401, 'the password was changed after this token was issued: log in again');
    return user;
  }

  async admin(e: Exchange): Promise<UserRecord> {
    const user = await this.authenticate(e);
    if (!user.admin) throw new HttpError(403, 'only an admin may do this');
    return user;
  }

  /** The owner the caller acts for: themself, or with `?group=` (admins only) another user. */
  private async actingFor(e: Exchange, user: UserRecord): Promise<string | undefined> {
    const group = e.query.get('group');
    if (group === null || group === '') return undefined;
    const owner = normalizeEmail(group);
    if (owner === user.email) return owner;
    if (!user.admin) throw new HttpError(403, 'only an admin may act for another user (--group)');
    if ((await this.deps.store.getUser(owner)) === undefined) throw new HttpError(404, `no user ${owner}`);
    return owner;
  }

  private async findApp(e: Exchange, name: string): Promise<{ user: UserRecord; app: AppRecord }> {
    const user = await this.authenticate(e);
    const group = await this.actingFor(e, user);
    const app = await this.deps.store.getAppByName(name);
    if (app === undefined || (group !== undefined && app.owner !== group)) throw new HttpError(404, `no app named ${name}`);
    if (app.owner !== user.email && !user.admin) throw new HttpError(403, `app ${name} belongs to another user`);
    return { user, app };
  }

  // ---- handlers ----

  private async info(e: Exchange): Promise<void> {
    let user: UserRecord | undefined;
    if (e.headers.authorization !== undefined) user = await this.authenticate(e);
    const body: Record<string, unknown> = {
      name: 'skiff',
      version: SKIFF_VERSION,
      description: 'Skiff: a router-first platform-as-a-service',
      router_url: this.options.routerUrl,
      domain: this.options.domain,
      limits: this.options.limits,
    };
    if (user !== undefined) {
      body.user = user.email;
      body.admin = user.admin;
      body.usage = usage(await this.appsOf(user.email));
    }
    e.json(200, body);
  }

  /**
   * Known and unknown emails go the same way (a password check each, the
   * lockout counted alike), so neither the answer nor its time tells whether
   * an email has an account.
   */
  private async login(e: Exchange, rawEmail: string): Promise<void> {
    const body = checkLogin(await e.readJson());
    if (!body.ok) throw new HttpError(400, body.error);
    const { token, expiresAt } = await this.issueToken(rawEmail, body.value.password);
    e.json(200, { token, expires_at: expiresAt });
  }

  /** The user whose email and password these are (a login: counted by the lockout), or 401/429. */
  async checkCredentials(rawEmail: string, password: string): Promise<UserRecord> {
    const email = normalizeEmail(rawEmail);
    // Not an email: no account can have it, so there is nothing to lock.
    const counted = isEmail(email);
    if (counted) refuseWhileLocked(await this.deps.lockout.check(email));
    const user = counted ? await this.deps.store.getUser(email) : undefined;
    const right = user !== undefined ? await checkPassword(password, user.password) : await this.checkDummy(password);
    if (user === undefined || !right) {
      if (counted) await this.deps.lockout.failed(email);
      throw new HttpError(401, 'wrong email or password');
    }
    await this.deps.lockout.cleared(email);
    return user;
  }

  /** A login: the token the CLI gets (and the console keeps in its cookie). */
  async issueToken(rawEmail: string, password: string): Promise<{ token: string; expiresAt: number; user: UserRecord }> {
    const user = await this.checkCredentials(rawEmail, password);
    return { ...signToken(this.deps.secret, user.email, nowSeconds(), undefined, user.token_generation ?? 0), user };
  }

  /**
   * The cluster view for Prometheus: an admin's token, or HTTP basic auth
   * with an admin's email and password (what a scrape config can hold).
   */
  private async metrics(e: Exchange): Promise<void> {
    const basic = basicCredentials(e.headers.authorization);
    let user: UserRecord;
    if (basic !== undefined) {
      try {
        user = await this.checkCredentials(basic.user, basic.password);
      } catch (error) {
        if (error instanceof HttpError && error.status === 401) throw new HttpError(401, 'wrong email or password', 401, { 'WWW-Authenticate': 'Basic realm="skiff"' });
        throw error;
      }
      if (!user.admin) throw new HttpError(403, 'only an admin may read /metrics');
    } else {
      try {
        await this.admin(e);
      } catch (error) {
        if (error instanceof HttpError && error.status === 401) throw new HttpError(401, error.message, 401, { 'WWW-Authenticate': 'Basic realm="skiff"' });
        throw error;
      }
    }
    const body = await clusterMetrics({ stats: this.deps.stats, apps: () => this.deps.store.listApps() });
    e.send(200, body, { 'Content-Type': METRICS_CONTENT_TYPE, 'Cache-Control': 'no-store' });
  }

  /** As long as a real check, and always false. */
  private async checkDummy(password: string): Promise<false> {
    this.dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    await checkPassword(password, await this.dummyHash);
    return false;
  }

  /**
   * `PUT /users/:email/password`: a user changes their own with the right
   * old_password (a wrong one counts as a failed login); an admin sets
   * another's without. Every token issued before stops working.
   */
  private async changePassword(e: Exchange, rawEmail: string): Promise<void> {
    const caller = await this.authenticate(e);
    const body = checkPasswordChange(await e.readJson());
    if (!body.ok) throw new HttpError(400, body.error);
    const email = normalizeEmail(rawEmail);
    const own = email === caller.email;
    if (!own && !caller.admin) throw new HttpError(403, "only an admin may set another user's password");
    const user = own ? caller : await this.deps.store.getUser(email);
    if (user === undefined) throw new HttpError(404, `no user ${email}`);
    if (own) {
      const old = body.value.oldPassword;
      if (old === undefined) throw new HttpError(400, 'old_password is needed to change your own password');
      refuseWhileLocked(await this.deps.lockout.check(email));
      if (!(await checkPassword(old, user.password))) {
        await this.deps.lockout.failed(email);
        throw new HttpError(403, 'the old password is wrong');
      }
    }
    const changed = await this.deps.store.setPassword(email, await hashPassword(body.value.password));
    if (changed === undefined) throw new HttpError(404, `no user ${email}`);
    // Whoever set it knows the new password: failed logins before it no longer count.
    await this.deps.lockout.cleared(email);
    this.deps.log.info('password changed', { email, by: caller.email });
    e.empty(204);
  }

  /**
   * `skiff node info`, `skiff role add|remove`: asked of the node's
   * supervisor over NATS (nodeRolesSubject), which starts or stops the role
   * and remembers it. Stopping a DEA stops its instances: up to its stop grace.
   */
  private async nodeRoles(e: Exchange, node: string, request: NodeRolesRequest): Promise<void> {
    await this.admin(e);
    if (!NODE_NAME.test(node)) throw new HttpError(400, `invalid node name ${JSON.stringify(node)}`);
    if (request.role !== undefined && !(NODE_ROLES as readonly string[]).includes(request.role)) {
      throw new HttpError(400, `unknown role "${request.role}" (roles: ${NODE_ROLES.join(', ')})`);
    }
    let reply: NodeInfo | { error: string };
    try {
      reply = await this.deps.bus.request<NodeInfo | { error: string }>(nodeRolesSubject(node), request, NODE_ROLES_TIMEOUT_MS);
    } catch (error) {
      if (error instanceof BusRequestError && (error.reason === 'no-responders' || error.reason === 'timeout')) {
        throw new HttpError(404, `no node named ${node} answers (skiff nodes lists them)`);
      }
      throw error;
    }
    if ('error' in reply) throw new HttpError(409, reply.error);
    if (request.op !== 'info') this.deps.log.info(`role ${request.op === 'add' ? 'added to' : 'removed from'} a node`, { node, role: request.role });
    e.json(200, reply);
  }

  private async listUsers(e: Exchange): Promise<void> {
    await this.admin(e);
    const users = await this.deps.store.listUsers();
    e.json(200, users.map((u) => ({ email: u.email, admin: u.admin })).sort((a, b) => a.email.localeCompare(b.email)));
  }

  private async addUser(e: Exchange): Promise<void> {
    await this.admin(e);
    const body = checkNewUser(await e.readJson());
    if (!body.ok) throw new HttpError(400, body.error);
    const { email, password, admin } = body.value;
    const created = await this.deps.store.createUser({ email, admin, password: await hashPassword(password), created: nowSeconds() });
    if (!created) throw new HttpError(409, `user ${email} exists already`);
    this.deps.log.info('user added', { email, admin });
    e.json(201, { email, admin });
  }

  private async deleteUser(e: Exchange, rawEmail: string): Promise<void> {
    const caller = await this.admin(e);
    const email = normalizeEmail(rawEmail);
    if (email === caller.email) throw new HttpError(400, 'you cannot delete yourself');
    if ((await this.deps.store.getUser(email)) === undefined) throw new HttpError(404, `no user ${email}`);
    for (const app of await this.appsOf(email)) await this.removeApp(app);
    await this.serviceRoutes.removeAllOf(email);
    await this.deps.store.deleteUser(email);
    this.deps.log.info('user deleted', { email });
    e.empty(204);
  }

  async listAllApps(): Promise<AppRecord[]> {
    return this.deps.store.listApps();
  }

  async appsOf(owner: string): Promise<AppRecord[]> {
    return (await this.deps.store.listApps()).filter((a) => a.owner === owner);
  }

  private async listApps(e: Exchange): Promise<void> {
    const user = await this.authenticate(e);
    const group = await this.actingFor(e, user);
    const all = e.query.get('all');
    if (all !== null && all !== '0' && !user.admin) throw new HttpError(403, 'only an admin may list every app');
    const apps = all !== null && all !== '0' ? await this.deps.store.listApps() : await this.appsOf(group ?? user.email);
    const services = apps.some((app) => appServices(app).length > 0) ? await this.serviceRoutes.byId() : undefined;
    e.json(200, await Promise.all(apps.map((app) => this.view(app, undefined, services))));
  }

  private async createApp(e: Exchange): Promise<void> {
    const user = await this.authenticate(e);
    const owner = (await this.actingFor(e, user)) ?? user.email;
    const body = checkNewApp(await e.readJson(), this.options.domain);
    if (!body.ok) throw new HttpError(400, body.error);
    await this.checkUrisFree(body.value.uris, undefined);
    if (!user.admin && (await this.appsOf(owner)).length >= this.options.limits.apps) {
      throw new HttpError(403, `app limit reached (${this.options.limits.apps} apps)`);
    }
    const { services: serviceNames, ...fields } = body.value;
    const wanted = await this.serviceRoutes.resolve(serviceNames, owner);
    const now = nowSeconds();
    const id = randomBytes(12).toString('hex');
    const uid = await this.takeUid(id);
    const app: AppRecord = {
      id,
      ...fields,
      owner,
      state: 'STOPPED',
      disk: this.options.defaultDiskMb,
      package_state: 'PENDING',
      staging_error: null,
      droplet: null,
      droplet_object: null,
      staging: null,
      bits: null,
      staging_id: null,
      run_count: 0,
      last_updated: now,
      uid,
      ...(wanted.length > 0 ? { services: wanted.map((s) => s.id) } : {}),
      created: now,
      updated: now,
    };
    // Bound before the app exists: a service that cannot be bound leaves no app behind.
    const undo = async () => {
      for (const service of wanted) await this.deps.services.unbindQuietly(id, service.id);
      await this.deps.uids.free(uid, id).catch(() => undefined);
    };
    for (const service of wanted) {
      try {
        await this.deps.services.bind(app, service);
      } catch (err) {
        await undo();
        throw nodeFailure(err, `binding ${service.name}`);
      }
    }
    const created = await this.deps.store.createApp(app).catch(async (err: unknown) => {
      await undo();
      throw err;
    });
    if (!created) {
      await undo();
      throw new HttpError(409, `the app name ${app.name} is taken`);
    }
    this.deps.log.info('app created', { app: app.name, droplet: app.id, owner });
    await this.record(app.id, e, [{ type: 'created', description: `created for ${owner}` }, ...wanted.map((s) => boundEvent(s))]);
    e.json(201, await this.view(app, []));
  }

  /** The new app's own uid; 503 when the range is used up. */
  private async takeUid(appId: string): Promise<number> {
    try {
      return await this.deps.uids.allocate(appId);
    } catch (err) {
      if (err instanceof UidsExhaustedError) {
        this.deps.log.error('app not created: no uid left', { error: err.message });
        throw new HttpError(503, 'the platform has no room for another app (no free app uid): ask an admin');
      }
      throw err;
    }
  }

  private async showApp(e: Exchange, name: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    e.json(200, await this.view(app));
  }

  private async updateApp(e: Exchange, name: string): Promise<void> {
    const { user, app } = await this.findApp(e, name);
    const body = checkAppChange(await e.readJson());
    if (!body.ok) throw new HttpError(400, body.error);
    if (body.value.uris !== undefined) await this.checkUrisFree(body.value.uris, app.id);
    // `services` names the whole list; new ones are bound before the app's record says so, so every placement finds them.
    const wanted = body.value.services === undefined ? undefined : await this.serviceRoutes.resolve(body.value.services, app.owner);
    for (const service of wanted ?? []) {
      if (appServices(app).includes(service.id)) continue;
      await this.deps.services.bind(app, service).catch((err: unknown) => {
        throw nodeFailure(err, `binding ${service.name}`);
      });
    }
    const change = wanted === undefined ? body.value : { ...body.value, services: wanted.map((s) => s.id) };
    let refusal: HttpError | undefined;
    const others = user.admin ? [] : (await this.appsOf(app.owner)).filter((a) => a.id !== app.id);
    const result = await this.deps.store.updateApp(app.id, (current) => {
      const changed = applyChange(current, change, nowSeconds());
      if (!changed.ok) {
        refusal = new HttpError(changed.status, changed.error);
        return undefined;
      }
      if (!user.admin && usage([...others, changed.app]).memory > this.options.limits.memory && changed.app.state === 'STARTED') {
        refusal = new HttpError(403, `memory limit reached: ${this.options.limits.memory} MB for all started instances`);
        return undefined;
      }
      refusal = undefined;
      return changed.app;
    });
    if (result === undefined) throw new HttpError(404, `no app named ${name}`);
    if (refusal !== undefined) throw refusal;
    await this.deps.lifecycle.changed(result.before, result.after);
    const removed = appServices(result.before).filter((id) => !appServices(result.after).includes(id));
    const added = (wanted ?? []).filter((s) => !appServices(result.before).includes(s.id));
    const unbound: EventDraft[] = [];
    for (const id of removed) {
      const service = await this.deps.services.store.get(id);
      // Revoked now: the instances that still hold the credentials are being replaced by ones without them.
      await this.deps.services.unbindQuietly(app.id, id);
      unbound.push({ type: 'unbound', description: `unbound service ${service?.name ?? id}` });
    }
    await this.record(app.id, e, [...describeChange(result.before, result.after), ...added.map((s) => boundEvent(s)), ...unbound]);
    e.json(200, await this.view(result.after));
  }

  /**
   * A service taken from an app by someone else than its owner's PUT (the
   * service is deleted with --force): the app's record, its rolling
   * restart, an event, and the node's unbind.
   */
  private async unbindFromApp(app: AppRecord, service: ServiceRecord, actor: string): Promise<void> {
    const result = await this.deps.store.updateApp(app.id, (current) => {
      if (!appServices(current).includes(service.id)) return undefined;
      const changed = applyChange(current, { services: appServices(current).filter((id) => id !== service.id) }, nowSeconds());
      return changed.ok ? changed.app : undefined;
    });
    if (result !== undefined && result.before !== result.after) {
      await this.deps.lifecycle.changed(result.before, result.after);
      await recordEvents(this.deps.store, this.deps.log, app.id, actor, [{ type: 'unbound', description: `unbound service ${service.name} (the service is being deleted)` }]);
    }
    await this.deps.services.unbindQuietly(app.id, service.id);
  }

  /**
   * A rolling restart: a new version of every index starts, and each old
   * instance stops only once its successor runs (the rollover of a new
   * droplet), so clients polling the app see no error.
   */
  private async restartApp(e: Exchange, name: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    let refusal: HttpError | undefined;
    const result = await this.deps.store.updateApp(app.id, (current) => {
      const restarted = applyRestart(current, nowSeconds());
      if (!restarted.ok) {
        refusal = new HttpError(restarted.status, restarted.error);
        return undefined;
      }
      refusal = undefined;
      return restarted.app;
    });
    if (result === undefined) throw new HttpError(404, `no app named ${name}`);
    if (refusal !== undefined) throw refusal;
    await this.deps.lifecycle.changed(result.before, result.after);
    await this.record(app.id, e, [{ type: 'restarted', description: `rolling restart of ${result.after.instances} instance${result.after.instances === 1 ? '' : 's'}` }]);
    e.json(200, await this.view(result.after));
  }

  /** A route belongs to one app: the router would otherwise balance one app's traffic onto another's instances. */
  private async checkUrisFree(uris: string[], appId: string | undefined): Promise<void> {
    const reserved = `api.${this.options.domain}`;
    for (const uri of uris) {
      if (uri === reserved || uri.startsWith(`${reserved}/`)) throw new HttpError(409, `${uri} is the platform's API`);
    }
    for (const other of await this.deps.store.listApps()) {
      if (other.id === appId) continue;
      const taken = uris.find((uri) => other.uris.includes(uri));
      if (taken !== undefined) throw new HttpError(409, `${taken} is taken by another app`);
    }
  }

  private async deleteApp(e: Exchange, name: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    await this.removeApp(app);
    e.empty(204);
  }

  /** Stops the app everywhere, forgets it, and removes its bits and any droplet no other app uses. */
  private async removeApp(app: AppRecord): Promise<void> {
    const { store } = this.deps;
    this.deps.lifecycle.stopAll(app);
    // The record as it is now: an app older than uids may have been given one since it was read.
    const uid = (await store.getApp(app.id))?.uid ?? app.uid;
    const services = appServices((await store.getApp(app.id)) ?? app);
    await store.deleteApp(app);
    if (uid !== undefined) await this.deps.uids.free(uid, app.id);
    // The app's credentials go with it; what a node does not confirm now, the reconcile pass revokes.
    for (const id of services) await this.deps.services.unbindQuietly(app.id, id);
    for (const object of await store.bits.list()) {
      if (object.name.startsWith(`${app.id}.`) && !object.deleted) await store.bits.delete(object.name).catch(() => {});
    }
    if (app.droplet_object !== null) await this.collectDroplet(app.droplet_object);
    this.deps.log.info('app deleted', { app: app.name, droplet: app.id });
  }

  private async collectDroplet(object: string): Promise<void> {
    const apps = await this.deps.store.listApps();
    if (apps.some((a) => a.droplet_object === object)) return;
    await this.deps.store.droplets.delete(object).catch(() => {});
  }

  private async upload(e: Exchange, name: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    const received = await receivePackage(e, this.options.uploadDir, this.options.maxUploadBytes);
    const { store } = this.deps;
    const object = bitsObjectName(app.id, received.sha256);
    try {
      const stream = Readable.toWeb(createReadStream(received.path)) as unknown as ReadableStream<Uint8Array>;
      await store.bits.put({ name: object, description: `${app.name} package (${received.format})` }, stream);
    } finally {
      await received.discard();
    }
    const stagingId = randomBytes(8).toString('hex');
    const result = await store.updateApp(app.id, (current) => {
      current.bits = { object, sha256: received.sha256, size: received.size };
      current.package_state = 'STAGING';
      current.staging_error = null;
      current.staging_id = stagingId;
      current.staging_started = nowSeconds();
      current.updated = nowSeconds();
      return current;
    });
    if (result === undefined) throw new HttpError(404, `no app named ${name}`);
    const previous = result.before.bits?.object;
    if (previous !== undefined && previous !== object) await store.bits.delete(previous).catch(() => {});
    this.deps.log.info('bits uploaded', { app: app.name, sha256: received.sha256, size: received.size, format: received.format });
    await this.record(app.id, e, [{ type: 'pushed', description: `${received.format} package, ${received.size} bytes, sha256 ${received.sha256.slice(0, 12)}` }]);
    e.json(202, { sha256: received.sha256, size: received.size, package_state: 'STAGING' });
    const oldDroplet = result.before.droplet_object;
    void this.deps.staging.run(result.after).then(async () => {
      if (oldDroplet !== null) await this.collectDroplet(oldDroplet);
    });
  }

  private async stagingLog(e: Exchange, name: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    await this.deps.staging.streamLog(app, e);
  }

  private async listInstances(e: Exchange, name: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    const found = await this.deps.instances.find({ droplet: app.id, include_stats: true });
    type Listed = { index: number; state: string; since: number; host: string | null; port: number | null; instance: string; version: string };
    const listed: Listed[] = found
      .filter((i) => i.state !== 'DELETED')
      .sort((a, b) => a.index - b.index || a.state_timestamp - b.state_timestamp)
      .map((i) => ({ index: i.index, state: i.state, since: i.state_timestamp, host: i.stats?.host ?? null, port: i.stats?.port ?? null, instance: i.instance, version: i.version }));
    if (app.state === 'STARTED') {
      for (let index = 0; index < app.instances; index++) {
        if (!listed.some((i) => i.index === index && (i.state === 'RUNNING' || i.state === 'STARTING'))) {
          listed.push({ index, state: 'DOWN', since: app.last_updated, host: null, port: null, instance: '', version: appVersion(app) ?? '' });
        }
      }
      listed.sort((a, b) => a.index - b.index);
    }
    e.json(200, { instances: listed });
  }

  private async stats(e: Exchange, name: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    const found = await this.deps.instances.find({ droplet: app.id, include_stats: true });
    const byIndex: Record<string, { state: string; stats: unknown }> = {};
    for (const [index, instance] of bestPerIndex(found, appVersion(app))) {
      byIndex[String(index)] = { state: instance.state, stats: instance.stats ?? null };
    }
    if (app.state === 'STARTED') {
      for (let index = 0; index < app.instances; index++) byIndex[String(index)] ??= { state: 'DOWN', stats: null };
    }
    e.json(200, byIndex);
  }

  /**
   * The figures the autoscaler decides on, as they are now (the same
   * function of the same bus messages, bus/app-stats.ts), per running
   * instance as its policy's targets are; null where no router or DEA has
   * reported. `skiff autoscale APP` shows them.
   */
  private async autoscaleNow(e: Exchange, name: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    const version = appVersion(app);
    let running = 0;
    if (app.state === 'STARTED' && version !== null) {
      const found = await this.deps.instances.find({ droplet: app.id, states: ['RUNNING'] }).catch(() => []);
      running = new Set(found.filter((i) => i.state === 'RUNNING' && i.version === version && i.index < app.instances).map((i) => i.index)).size;
    }
    const figures = autoscaleFigures(this.deps.stats, app.id);
    const perInstance = (total: number | undefined) => (total === undefined || running === 0 ? null : round(total / running));
    e.json(200, {
      autoscale: app.autoscale ?? null,
      window_s: AUTOSCALE_WINDOW_MS / 1000,
      running,
      desired: app.instances,
      rps: figures.rps === undefined ? null : round(figures.rps),
      rps_per_instance: perInstance(figures.rps),
      p99_ms: figures.p99Ms === undefined ? null : round(figures.p99Ms),
      cpu: figures.cpu === undefined ? null : round(figures.cpu),
      cpu_per_instance: perInstance(figures.cpu),
    });
  }

  /**
   * What `skiff bench` needs before it runs: the app's routes and where the
   * router is, one running instance to aim `--compare-direct` at, and the
   * platform's bounds on a run (config store). Asked through the app's path,
   * so that a load run has the same ownership check as any other change: the
   * CLI runs the load itself, and refuses an app this user may not touch.
   */
  private async benchPlan(e: Exchange, name: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    if (app.state !== 'STARTED') throw new HttpError(409, `app ${name} is stopped: skiff start ${name} first`);
    if (app.uris.length === 0) throw new HttpError(409, `app ${name} has no route to load: skiff map ${name} HOST`);
    const version = appVersion(app);
    const running = (await this.deps.instances.find({ droplet: app.id, states: ['RUNNING'], include_stats: true }))
      .filter((i) => i.state === 'RUNNING' && i.version === version && typeof i.stats?.host === 'string' && typeof i.stats?.port === 'number')
      .sort((a, b) => a.index - b.index);
    const first = running[0];
    e.json(200, {
      name: app.name,
      uris: app.uris,
      router_url: this.options.routerUrl,
      limits: { max_duration: await this.settingValue('bench.max_duration'), max_connections: await this.settingValue('bench.max_connections') },
      running: running.length,
      direct: first === undefined ? null : { index: first.index, host: first.stats!.host, port: first.stats!.port },
    });
  }

  /** A config store value in force: the stored one when its rule accepts it, else the default. */
  private async settingValue(key: string): Promise<number | string> {
    const entry = await this.deps.config.get(key);
    const value = entry !== undefined && entry.invalid === undefined ? entry.value : undefined;
    return typeof value === 'number' || typeof value === 'string' ? value : knownSetting(key).default;
  }

  private async events(e: Exchange, name: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    e.json(200, await this.deps.store.events(app.id));
  }

  /** The authenticated user is the actor. */
  private async record(appId: string, e: Exchange, drafts: EventDraft[]): Promise<void> {
    if (drafts.length === 0) return;
    const actor = await this.authenticate(e).then(
      (user) => user.email,
      () => 'unknown user',
    );
    await recordEvents(this.deps.store, this.deps.log, appId, actor, drafts);
  }

  private async crashes(e: Exchange, name: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    e.json(200, await this.deps.store.crashes(app.id));
  }

  /**
   * Where a `skiff ssh` session goes: after the checks of every app call, the
   * running (else crashed) instance at `which`, an index or an instance id.
   */
  async sshTarget(e: Exchange, name: string, which: string): Promise<{ user: UserRecord; app: AppRecord; instance: DeaFindDropletReply }> {
    const { user, app } = await this.findApp(e, name);
    const filter = /^\d+$/.test(which) ? { droplet: app.id, indices: [Number(which)] } : { droplet: app.id, instances: [which] };
    const found = (await this.deps.instances.find(filter)).filter((i) => i.state === 'RUNNING' || i.state === 'CRASHED');
    const instance = bestPerIndex(found, appVersion(app)).values().next().value;
    if (instance === undefined) throw new HttpError(404, `no running or crashed instance ${which} of ${name}`);
    return { user, app, instance };
  }

  private async files(e: Exchange, name: string, which: string, path: string): Promise<void> {
    const { app } = await this.findApp(e, name);
    const filter = /^\d+$/.test(which) ? { droplet: app.id, indices: [Number(which)] } : { droplet: app.id, instances: [which] };
    const found = await this.deps.instances.find(filter);
    const instance = bestPerIndex(found, appVersion(app)).values().next().value;
    if (instance === undefined) throw new HttpError(404, `no instance ${which} of ${name} is known to any DEA`);
    const ask = async (request: Omit<FilesRequest, 'droplet' | 'instance'>): Promise<FilesReply> => {
      try {
        return await this.deps.bus.request<FilesReply>(deaFilesSubject(instance.dea), { droplet: app.id, instance: instance.instance, ...request }, FILES_TIMEOUT_MS);
      } catch (err) {
        throw new HttpError(502, `the DEA running instance ${which} did not answer: ${(err as Error).message}`);
      }
    };
    const tailParam = e.query.get('tail');
    const tail = tailParam !== null ? Number(tailParam) : undefined;
    if (tail !== undefined && (!Number.isInteger(tail) || tail <= 0)) throw new HttpError(400, 'tail must be a positive integer');
    const offsetParam = e.query.get('offset');
    const from = offsetParam !== null ? Number(offsetParam) : undefined;
    if (from !== undefined && (!Number.isInteger(from) || from < 0)) throw new HttpError(400, 'offset must be a whole number of bytes');
    if (from !== undefined && tail !== undefined) throw new HttpError(400, 'give tail or offset, not both');
    // `offset` lets `skiff logs --follow` ask for what was appended since its last read.
    let offset = tail !== undefined ? -tail : (from ?? 0);
    let remaining = tail ?? MAX_FILE_STREAM;
    const first = await ask({ path, offset, length: Math.min(remaining, FILES_MAX_SLICE) });
    if ('error' in first) {
      throw new HttpError(first.code === 'bad_path' ? 400 : 404, first.error);
    }
    if (first.type === 'directory') {
      e.json(200, { path: first.path, entries: first.entries });
      return;
    }
    e.startStream(200, { 'Content-Type': 'application/octet-stream', 'X-Skiff-File-Size': String(first.size) });
    let slice: FilesReply = first;
    for (;;) {
      if ('error' in slice || slice.type !== 'file') break;
      const data = Buffer.from(slice.data_base64, 'base64');
      await e.write(data);
      remaining -= data.length;
      offset = slice.offset + data.length;
      if (data.length === 0 || offset >= slice.size || remaining <= 0 || e.isAborted) break;
      slice = await ask({ path, offset, length: Math.min(remaining, FILES_MAX_SLICE) });
    }
    e.end();
  }

  // ---- cluster ----

  private async listConfig(e: Exchange): Promise<void> {
    await this.admin(e);
    e.json(200, await this.deps.config.list(e.query.get('prefix') ?? ''));
  }

  private async getConfig(e: Exchange, key: string): Promise<void> {
    await this.admin(e);
    const entry = await this.deps.config.get(key);
    if (entry === undefined) throw new HttpError(404, `unknown setting ${key} (skiff config list shows every key)`);
    e.json(200, entry);
  }

  private async setConfig(e: Exchange, key: string): Promise<void> {
    const user = await this.admin(e);
    const body = await e.readJson();
    if (typeof body !== 'object' || body === null || Array.isArray(body) || !('value' in body)) {
      throw new HttpError(400, 'the body must be {"value": <JSON value>}');
    }
    const entry = await this.deps.config.set(key, (body as { value: unknown }).value);
    // Only registry keys get here, none of which holds a secret.
    this.deps.log.info('config set', { key, value: JSON.stringify(entry.value), by: user.email });
    e.json(200, entry);
  }

  private async unsetConfig(e: Exchange, key: string): Promise<void> {
    const user = await this.admin(e);
    if (await this.deps.config.unset(key)) this.deps.log.info('config unset', { key, by: user.email });
    e.empty(204);
  }

  // ---- views ----

  async view(app: AppRecord, known?: DeaFindDropletReply[], services?: Map<string, ServiceRecord>): Promise<Record<string, unknown>> {
    const version = appVersion(app);
    let running = 0;
    let flapping: FlappingAnswer | undefined;
    if (app.state === 'STARTED' && version !== null) {
      const asked = askFlapping(this.deps.bus, app.id, version, HM_VIEW_TIMEOUT_MS);
      const found = known ?? (await this.deps.instances.find({ droplet: app.id, states: ['RUNNING'] }).catch(() => []));
      flapping = await asked;
      if (!flapping.ok && flapping.reason === 'malformed') this.rejections.reject(Subjects.healthmanagerStatus, flapping.error);
      // Indices beyond the count are on their way out (scaled down): not part of the app any more.
      running = new Set(found.filter((i) => i.state === 'RUNNING' && i.version === version && i.index < app.instances).map((i) => i.index)).size;
    }
    return {
      id: app.id,
      name: app.name,
      state: shownState(app.state, flapping),
      instances: app.instances,
      runningInstances: running,
      memory: app.memory,
      disk: app.disk,
      uris: app.uris,
      env: app.env,
      command: app.command,
      session_affinity: sessionAffinity(app),
      // Names only: the credentials stay in the bindings bucket.
      services: await this.serviceRoutes.names(appServices(app), services),
      autoscale: app.autoscale ?? null,
      staging: app.staging,
      package_state: app.package_state,
      staging_error: app.staging_error,
      // Only a started app is being placed; a stopped one keeps no stale reason.
      placement_error: app.state === 'STARTED' ? (app.placement_error ?? null) : null,
      droplet: app.droplet,
      version,
      owner: app.owner,
      meta: { created: app.created, updated: app.updated, last_updated: app.last_updated },
    };
  }
}

/** An app's `bound` event: the service by name, kind and plan; never its credentials. */
function boundEvent(service: ServiceRecord): EventDraft {
  return { type: 'bound', description: `bound service ${service.name} (${service.service}, ${service.plan})` };
}

/** 429 with Retry-After while logins of an email are locked out. */
function refuseWhileLocked(state: LockState): void {
  if (!state.locked) return;
  throw new HttpError(429, `too many failed logins for this email: try again in ${state.retryAfterSeconds} s`, 429, { 'Retry-After': String(state.retryAfterSeconds) });
}

function match(pattern: string[], segments: string[]): Params | undefined {
  const params: Params = {};
  for (let i = 0; i < pattern.length; i++) {
    const part = pattern[i]!;
    if (part === '*') {
      params['*'] = segments.slice(i).join('/');
      return params;
    }
    const segment = segments[i];
    if (segment === undefined) return undefined;
    if (part.startsWith(':')) params[part.slice(1)] = segment;
    else if (part !== segment) return undefined;
  }
  return segments.length === pattern.length ? params : undefined;
}

const STATE_RANK: Record<string, number> = { RUNNING: 0, STARTING: 1, CRASHED: 2, STOPPING: 3, STOPPED: 4, DELETED: 5 };

/** Per index the instance to show: the current version first, then the liveliest, then the newest. */
function bestPerIndex(found: DeaFindDropletReply[], version: string | null): Map<number, DeaFindDropletReply> {
  const best = new Map<number, DeaFindDropletReply>();
  const score = (i: DeaFindDropletReply) => [i.version === version ? 0 : 1, STATE_RANK[i.state] ?? 9, -i.state_timestamp];
  for (const instance of found) {
    const current = best.get(instance.index);
    if (current === undefined || less(score(instance), score(current))) best.set(instance.index, instance);
  }
  return new Map([...best].sort((a, b) => a[0] - b[0]));
}

function less(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}

function usage(apps: AppRecord[]): { memory: number; apps: number } {
  return {
    apps: apps.length,
    memory: apps.filter((a) => a.state === 'STARTED').reduce((sum, a) => sum + a.memory * a.instances, 0),
  };
}

/** Figures for a reader: two decimals are more than a rate over 10 s means. */
function round(x: number): number {
  return Math.round(x * 100) / 100;
}
