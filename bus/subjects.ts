// The NATS subjects of design.md, in one place so that no role spells one by hand.

export const Subjects = {
  routerRegister: 'router.register',
  routerUnregister: 'router.unregister',
  routerStart: 'router.start',
  routerGreet: 'router.greet',
  /** Per-app traffic counters from each router (bus/app-stats.ts). */
  routerAppStats: 'router.app_stats',

  deaAdvertise: 'dea.advertise',
  deaHeartbeat: 'dea.heartbeat',
  deaDiscover: 'dea.discover',
  deaLocate: 'dea.locate',
  /** Hello published by a DEA when it (re)starts; not the per-DEA start command. */
  deaStart: 'dea.start',
  deaInstanceStart: (uuid: string) => `dea.${uuid}.start`,
  deaStop: 'dea.stop',
  deaUpdate: 'dea.update',
  deaStatus: 'dea.status',
  deaFindDroplet: 'dea.find.droplet',
  /** Memory and per-instance usage from each DEA (bus/app-stats.ts). */
  deaStats: 'dea.stats',

  dropletExited: 'droplet.exited',
  dropletUpdated: 'droplet.updated',

  healthmanagerStart: 'healthmanager.start',
  healthmanagerStatus: 'healthmanager.status',
  healthmanagerHealth: 'healthmanager.health',
  hmRequests: 'cloudcontrollers.hm.requests',

  stager: (queue: string) => `vcap.stager.${queue}`,

  componentAnnounce: 'vcap.component.announce',
  componentDiscover: 'vcap.component.discover',
} as const;

/** Queue group in which controllers take `cloudcontrollers.hm.requests` (protocol.md). */
export const HM_REQUESTS_QUEUE = 'cc';
