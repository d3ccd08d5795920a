// What a node remembers across restarts, in <data-dir>/node.json (0600):
// its name, the roles it was given (`skiff up --roles`, `skiff role
// add|remove`), the address it advertises, its roles' metrics ports, and,
// for a node that joined a cluster, where the cluster's NATS is and whether
// it runs a nats-server.

import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { UsageError } from '../../bus/flags';
import { NODE_NAME, NODE_ROLES, type NodeRole } from '../../bus/platform';
import { writeSecret } from './nats';

export interface NodeState {
  name: string;
  roles: NodeRole[];
  /** The address other hosts reach this node at; 127.0.0.1 for a node alone. */
  advertise: string;
  /** Where the cluster reaches this node's nats-server, when not at `advertise` (a separate control network). */
  natsAdvertise?: string;
  /** Set on a node that joined: the cluster's NATS servers (the token's, then those it learned). */
  joined?: { servers: string[] };
  /** This node runs a nats-server of the cluster (the first node always does, unless --nats). */
  natsServer: boolean;
  /**
   * Each role's metrics port (the router's figures are on its status port),
   * kept so a Prometheus scrape config stays right across restarts; null:
   * none (`skiff up --metrics-port 0`).
   */
  metricsPorts?: Partial<Record<NodeRole, number>> | null;
}

export function nodeFile(dataDir: string): string {
  return join(dataDir, 'node.json');
}

export function loadNodeState(dataDir: string): NodeState | undefined {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(nodeFile(dataDir), 'utf8'));
  } catch {
    return undefined;
  }
  const fields = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if (typeof fields.name !== 'string' || !NODE_NAME.test(fields.name)) return undefined;
  const roles = Array.isArray(fields.roles) ? fields.roles.filter((r): r is NodeRole => (NODE_ROLES as readonly unknown[]).includes(r)) : [...NODE_ROLES];
  const joined = fields.joined as { servers?: unknown } | undefined;
  return {
    name: fields.name,
    roles,
    advertise: typeof fields.advertise === 'string' ? fields.advertise : '127.0.0.1',
    natsAdvertise: typeof fields.natsAdvertise === 'string' ? fields.natsAdvertise : undefined,
    joined: joined && Array.isArray(joined.servers) ? { servers: joined.servers.filter((s): s is string => typeof s === 'string') } : undefined,
    natsServer: fields.natsServer !== false,
    metricsPorts: fields.metricsPorts === null ? null : metricsPortsOf(fields.metricsPorts),
  };
}

function metricsPortsOf(value: unknown): Partial<Record<NodeRole, number>> | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const ports: Partial<Record<NodeRole, number>> = {};
  for (const [role, port] of Object.entries(value)) {
    if ((NODE_ROLES as readonly string[]).includes(role) && Number.isInteger(port) && (port as number) > 0 && (port as number) < 65536) ports[role as NodeRole] = port as number;
  }
  return ports;
}

export function saveNodeState(dataDir: string, state: NodeState): void {
  writeSecret(nodeFile(dataDir), JSON.stringify(state, null, 2) + '\n');
}

/** `--roles router,dea`: known roles, no repeats; a UsageError naming the unknown one. */
export function parseRoles(text: string, origin = '--roles'): NodeRole[] {
  const roles: NodeRole[] = [];
  for (const word of text.split(',').map((w) => w.trim()).filter((w) => w !== '')) {
    if (!(NODE_ROLES as readonly string[]).includes(word)) throw new UsageError(`${origin}: unknown role "${word}" (roles: ${NODE_ROLES.join(', ')})`);
    if (!roles.includes(word as NodeRole)) roles.push(word as NodeRole);
  }
  return roles;
}

