// Wires the controller's parts: the KV/object store, the DEA pool and
// lifecycle, staging, the REST API on uWebSockets.js, and its route.

import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ComponentAnnouncer, reachableAt } from '../../bus/component';
import type { Bus } from '../../bus/connection';
import type { MetricsServer } from '../../bus/metrics-server';
import type { Logger } from '../../bus/log';
import { AppStatsCollector } from '../../bus/app-stats';
import { Api } from './api';
import { AutoscaleRequests } from './autoscale';
import { ClusterConfig } from './cluster-config';
import { NodeWatch } from './nodes';
import { hashPassword } from './auth';
import { HttpServer } from './http';
import { Instances } from './instances';
import { Lifecycle } from './lifecycle';
import { LoginLockout } from './lockout';
import type { ControllerOptions } from './options';
import { DeaPool } from './placement';
import { RouteRegistration } from './registration';
import { Replication } from './replicas';
import { ServiceBindings, ServiceBroker, ServiceStore } from './services';
import { SSH_ROUTE, SshGateway } from './ssh';
import { Staging } from './staging';
import { Store } from './store';
import { AppUids } from './uids';

export const DEFAULT_DISK_MB = 1024;

export class Controller {
  port = 0;
  private http: HttpServer | undefined;
  private ssh: SshGateway | undefined;
  private lifecycle: Lifecycle | undefined;
  private autoscale: AutoscaleRequests | undefined;
  private registration: RouteRegistration | undefined;
  private replication: Replication | undefined;
  private uploadDir: string | undefined;
  private ownUploadDir = false;
  private announcer: ComponentAnnouncer | undefined;
  private nodes: NodeWatch | undefined;
  private stats: AppStatsCollector | undefined;
  private api: Api | undefined;
  private readonly startedAt = new Date();

  constructor(
    private readonly options: ControllerOptions,
    private readonly bus: Bus,
    private readonly log: Logger,
    /** Its own metrics port, announced with the component (bus/metrics-server.ts). */
    private readonly metrics?: MetricsServer,
  ) {}

  async start(): Promise<void> {
    const { options, bus, log } = this;
    const store = await Store.open(bus);
    const uids = await AppUids.open(bus, options.appUids);
    const secret = await store.tokenSecret();
    const lockout = await LoginLockout.open(bus);
    const config = await ClusterConfig.open(bus);
    const nodes = await NodeWatch.open(bus, log, { downAfterMs: options.nodeTimeoutMs });
    const services = new ServiceBindings(await ServiceStore.open(bus), new ServiceBroker(bus, options.serviceTimeoutMs), log, options.serviceTimeoutMs);
    this.nodes = nodes;
    await this.ensureFirstAdmin(store);

    if (options.uploadDir !== undefined) {
      mkdirSync(options.uploadDir, { recursive: true, mode: 0o700 });
      this.uploadDir = options.uploadDir;
    } else {
      this.uploadDir = mkdtempSync(join(tmpdir(), 'skiff-controller-'));
      this.ownUploadDir = true;
    }

    const pool = new DeaPool();
    const instances = new Instances(bus, pool, log, options.findWindowMs);
    const lifecycle = new Lifecycle(bus, store, pool, instances, log, {
      reconcileIntervalMs: options.reconcileIntervalMs,
      stagingTimeoutMs: options.stagingTimeoutMs,
      replacePollMs: 1000,
    }, uids, services);
    this.lifecycle = lifecycle;
    const staging = new Staging(bus, store, log, { queue: options.stagerQueue, timeoutMs: options.stagingTimeoutMs }, (before, after) =>
      lifecycle.changed(before, after),
    );
    const stats = new AppStatsCollector(bus, log);
    stats.start();
    this.stats = stats;
    const api = new Api({ bus, store, secret, lockout, lifecycle, staging, instances, log, uids, config, nodes, stats, services }, {
      domain: options.domain,
      routerUrl: options.routerUrl,
      maxUploadBytes: options.maxUploadBytes,
      uploadDir: this.uploadDir,
      limits: options.limits,
      defaultDiskMb: DEFAULT_DISK_MB,
    });
    this.api = api;
    this.http = new HttpServer((e) => api.handle(e), (error, e) => api.fail(error, e));
    this.ssh = new SshGateway(bus, api, store, log);
    this.http.addWebSocket(SSH_ROUTE, this.ssh.behavior());
    this.port = await this.http.listen(options.host, options.port);

    lifecycle.start();
    this.autoscale = new AutoscaleRequests(bus, store, lifecycle, pool, log, options.limits);
    this.autoscale.start();
    this.replication = new Replication(bus, log, options.reconcileIntervalMs);
    this.replication.start();
    const registeredHost = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
    this.registration = new RouteRegistration(bus, {
      host: registeredHost,
      port: this.port,
      uris: [`api.${options.domain}`],
      tags: { component: 'CloudController' },
    }, log);
    this.registration.start();
    this.announcer = new ComponentAnnouncer(bus, {
      type: 'CloudController',
      index: 0,
      uuid: randomUUID(),
      host: () => reachableAt(options.host, this.port),
      node: options.node,
      startedAt: this.startedAt,
      ...this.metrics?.announced(),
    }, log);
    this.announcer.start();
    nodes.start();
  }

  private async ensureFirstAdmin(store: Store): Promise<void> {
    const admin = this.options.admin;
    if (await store.hasUsers()) return;
    if (admin === undefined) {
      this.log.warn('no users yet and no SKIFF_ADMIN_EMAIL/SKIFF_ADMIN_PASSWORD: nobody can log in');
      return;
    }
    const created = await store.createUser({ email: admin.email, admin: true, password: await hashPassword(admin.password), created: Math.floor(Date.now() / 1000) });
    if (created) this.log.info('first admin created', { email: admin.email });
  }

  async stop(): Promise<void> {
    this.nodes?.stop();
    this.announcer?.stop();
    this.registration?.stop();
    this.replication?.stop();
    this.autoscale?.stop();
    await this.lifecycle?.stop();
    this.ssh?.stop();
    this.stats?.stop();
    this.api?.console.stop();
    this.http?.close();
    if (this.ownUploadDir && this.uploadDir !== undefined) rmSync(this.uploadDir, { recursive: true, force: true });
  }
}
