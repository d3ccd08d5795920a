// Who may say what on the bus. `skiff up` gives every role its own NATS user
// with exactly these permissions (nats-server authorization), so that a
// role, or whatever steals one role's credentials, can do that role's job
// and nothing else; apps get no NATS user at all. The README's table of
// roles and subjects is this table (a test compares them).
//
// Replies: a role may answer a request it received (allow_responses) but
// not publish into other inboxes, and it subscribes only to its own inbox
// prefix (`_INBOX.<user>.`), so no role can read another's replies.
//
// JetStream: the controller keeps the platform's state and may use all of
// it; the other roles reach only the buckets of their job, read-only where
// they only read. A bucket's stream is KV_<bucket> (key-value) or
// OBJ_<bucket> (object store); reading it needs the JetStream API calls of
// stream info, direct and message get, and ordered consumers (watch, keys,
// object downloads), whose messages come to the role's inbox.

import { AUTOSCALE_SUBJECT } from './autoscale';
import { CONFIG_BUCKET } from './config';
import {
  APPS_BUCKET, CLUSTER_BUCKET, HEALTH_BUCKET, HM_GIVEUP_SUBJECT, NODE_CREDENTIALS_SUBJECT, ObjectStores, SERVICES_BUCKET, ServiceSubjects,
} from './platform';
import { Subjects } from './subjects';

/** The NATS users of the platform: one per role, and `node` for the node supervisors (`skiff up`). */
export const NATS_ROLES = ['router', 'controller', 'stager', 'dea', 'health', 'services', 'node'] as const;
export type NatsRole = (typeof NATS_ROLES)[number];

/** The user `skiff up` writes to <data-dir>/nats/operator.json: every subject, for operators and the `nats` CLI. */
export const OPERATOR_USER = 'operator';

export interface RolePermissions {
  publish: string[];
  subscribe: string[];
}

/** Inbox prefix of a role's connection: its requests' replies and JetStream deliveries arrive below it. */
export function inboxPrefix(user: string): string {
  return `_INBOX.${user}`;
}

/** Replies per request a role may send (dea.find.droplet: one per matching instance), and how long after it. */
export const RESPONSE_PERMISSION = { max: 10_000, expires: '1h' } as const;

type Access = 'read' | 'write';

function kv(bucket: string, access: Access): string[] {
  return stream(`KV_${bucket}`, access === 'write' ? [`$KV.${bucket}.>`] : []);
}

function objects(bucket: string, access: Access): string[] {
  // nats.js finds an object store's stream by its subjects: a list of names, nothing more.
  return ['$JS.API.STREAM.NAMES', ...stream(`OBJ_${bucket}`, access === 'write' ? [`$O.${bucket}.>`] : [])];
}

function stream(name: string, writes: string[]): string[] {
  const api = '$JS.API';
  return [
    `${api}.STREAM.INFO.${name}`,
    // Whoever opens a bucket first creates it (bus/jetstream.ts), readers included.
    `${api}.STREAM.CREATE.${name}`,
    `${api}.STREAM.MSG.GET.${name}`,
    `${api}.DIRECT.GET.${name}`,
    `${api}.DIRECT.GET.${name}.>`,
    `${api}.CONSUMER.CREATE.${name}`,
    `${api}.CONSUMER.CREATE.${name}.>`,
    `${api}.CONSUMER.DELETE.${name}.>`,
    `${api}.CONSUMER.INFO.${name}.>`,
    `$JS.FC.${name}.>`,
    ...(writes.length > 0 ? [...writes, `${api}.STREAM.UPDATE.${name}`, `${api}.STREAM.PURGE.${name}`] : []),
  ];
}

const JETSTREAM_INFO = '$JS.API.INFO';
/** What the controller asks of the services nodes (`*`: a node's name). */
const SERVICES_REQUESTS = [
  ServiceSubjects.offerings, ServiceSubjects.provision, ServiceSubjects.deprovision('*'), ServiceSubjects.bind('*'),
  ServiceSubjects.unbind('*'), ServiceSubjects.status('*'),
];
/** Every role announces itself and answers discovery (design.md, Cluster and operations). */
const COMPONENT_PUBLISH = [Subjects.componentAnnounce];
const COMPONENT_SUBSCRIBE = [Subjects.componentDiscover];

/**
 * The subjects of each role's job. `*` stands for one token (a DEA's or an
 * ssh session's id, an app id), `>` for the rest of a subject.
 */
export const ROLE_PERMISSIONS: Readonly<Record<NatsRole, RolePermissions>> = {
  router: {
    publish: [Subjects.routerStart, Subjects.routerAppStats, ...COMPONENT_PUBLISH, JETSTREAM_INFO, ...kv(CONFIG_BUCKET, 'read')],
    subscribe: [Subjects.routerRegister, Subjects.routerUnregister, Subjects.routerGreet, ...COMPONENT_SUBSCRIBE],
  },
  controller: {
    publish: [
      // The API's own route (api.<domain>).
      Subjects.routerRegister, Subjects.routerUnregister,
      'dea.*.start', 'dea.*.files', 'dea.*.ssh', Subjects.deaDiscover, Subjects.deaStop, Subjects.deaUpdate,
      Subjects.deaFindDroplet, Subjects.deaLocate, Subjects.deaStatus,
      Subjects.dropletUpdated, Subjects.healthmanagerStatus, Subjects.healthmanagerHealth,
      'vcap.stager.*', 'ssh.*.in', 'ssh.*.ctl',
      // `skiff role add|remove`, `skiff node info`: asked of the node's supervisor.
      'skiff.node.*.roles',
      // Data services: provisioned, bound and watched through the services nodes.
      ...SERVICES_REQUESTS,
      // `skiff nodes`: it asks every component, and hears their announcements.
      ...COMPONENT_PUBLISH, Subjects.componentDiscover,
      // The platform's state: users, apps, tokens' secret, bits, droplets, config.
      '$JS.API.>', '$KV.>', '$O.>', '$JS.ACK.>', '$JS.FC.>',
    ],
    subscribe: [
      Subjects.routerStart, Subjects.deaAdvertise, Subjects.dropletExited, Subjects.hmRequests, HM_GIVEUP_SUBJECT, AUTOSCALE_SUBJECT,
      'staging.*.log', 'ssh.*.out', 'ssh.*.exit', ...COMPONENT_SUBSCRIBE, Subjects.componentAnnounce,
      // GET /metrics and the console: what the routers measure and the DEAs use, per app.
      Subjects.routerAppStats, Subjects.deaStats,
    ],
  },
  stager: {
    publish: [
      'staging.*.log', ...COMPONENT_PUBLISH, JETSTREAM_INFO,
      ...objects(ObjectStores.bits, 'read'), ...objects(ObjectStores.droplets, 'write'), ...kv(CONFIG_BUCKET, 'read'),
    ],
    subscribe: ['vcap.stager.*', ...COMPONENT_SUBSCRIBE],
  },
  dea: {
    publish: [
      Subjects.deaAdvertise, Subjects.deaHeartbeat, Subjects.deaStart, Subjects.deaStats, Subjects.dropletExited,
      Subjects.routerRegister, Subjects.routerUnregister, Subjects.routerGreet,
      'ssh.*.out', 'ssh.*.exit', ...COMPONENT_PUBLISH, JETSTREAM_INFO,
      ...objects(ObjectStores.droplets, 'read'), ...kv(CONFIG_BUCKET, 'read'),
    ],
    subscribe: [
      'dea.*.start', 'dea.*.files', 'dea.*.ssh', Subjects.deaDiscover, Subjects.deaLocate, Subjects.deaStop,
      Subjects.deaFindDroplet, Subjects.deaUpdate, Subjects.deaStatus, Subjects.routerStart, Subjects.healthmanagerStart,
      'ssh.*.in', 'ssh.*.ctl', ...COMPONENT_SUBSCRIBE,
    ],
  },
  health: {
    publish: [
      Subjects.hmRequests, HM_GIVEUP_SUBJECT, AUTOSCALE_SUBJECT, Subjects.healthmanagerStart, ...COMPONENT_PUBLISH, JETSTREAM_INFO,
      ...kv(APPS_BUCKET, 'read'), ...kv(HEALTH_BUCKET, 'write'), ...kv(CONFIG_BUCKET, 'read'),
    ],
    subscribe: [
      Subjects.deaHeartbeat, Subjects.dropletExited, Subjects.dropletUpdated, Subjects.hmRequests,
      Subjects.healthmanagerStatus, Subjects.healthmanagerHealth, ...COMPONENT_SUBSCRIBE,
      // The autoscaler: request rate and latency per app from the routers, CPU from the DEAs.
      Subjects.routerAppStats, Subjects.deaStats,
    ],
  },
  // A services node answers the controller and keeps its instances' records
  // (never a password: those stay in its data dir). It routes no traffic,
  // starts no app and reads no other bucket.
  services: {
    publish: [...COMPONENT_PUBLISH, JETSTREAM_INFO, ...kv(SERVICES_BUCKET, 'write')],
    subscribe: [...SERVICES_REQUESTS, ...COMPONENT_SUBSCRIBE],
  },
  // The node supervisors are the cluster's own infrastructure: a joining node
  // asks the ones that hold the cluster's secrets for its roles' credentials.
  node: {
    publish: [NODE_CREDENTIALS_SUBJECT, ...COMPONENT_PUBLISH, JETSTREAM_INFO, ...kv(CLUSTER_BUCKET, 'write')],
    subscribe: [NODE_CREDENTIALS_SUBJECT, 'skiff.node.*.roles', ...COMPONENT_SUBSCRIBE],
  },
};

/** A role's permissions with its inbox added: what goes into the nats-server configuration. */
export function serverPermissions(role: NatsRole): RolePermissions {
  const own = ROLE_PERMISSIONS[role];
  return { publish: [...own.publish], subscribe: [...own.subscribe, `${inboxPrefix(role)}.>`] };
}

/**
 * The README's table (Markdown): per role, what it may publish and
 * subscribe to, JetStream API subjects summarised as the buckets they reach.
 */
export function permissionTable(): string {
  const rows = ['| NATS user | publishes | subscribes to | JetStream |', '|---|---|---|---|'];
  for (const role of NATS_ROLES) {
    const { publish, subscribe } = ROLE_PERMISSIONS[role];
    const plain = (subjects: string[]) => subjects.filter((s) => !s.startsWith('$')).map((s) => `\`${s}\``).join(', ');
    rows.push(`| \`${role}\` | ${plain(publish)} | ${plain(subscribe)} | ${jetStreamReach(publish)} |`);
  }
  rows.push(`| \`${OPERATOR_USER}\` | everything | everything | everything |`);
  return rows.join('\n');
}

function jetStreamReach(publish: string[]): string {
  if (publish.includes('$JS.API.>')) return 'all buckets and object stores';
  const reach: string[] = [];
  for (const subject of publish) {
    const created = /^\$JS\.API\.STREAM\.CREATE\.(KV|OBJ)_(.+)$/.exec(subject);
    if (!created) continue;
    const [, kind, bucket] = created;
    const writes = publish.includes(kind === 'KV' ? `$KV.${bucket}.>` : `$O.${bucket}.>`);
    reach.push(`\`${bucket}\` ${writes ? 'read/write' : 'read'}`);
  }
  return reach.join(', ');
}
