// What a services node offers (`skiff marketplace`): three services, each
// with the plans `free` and `large`. The limits below are what the plans
// mean; README.md ("Services") lists them too.

import type { ServiceLabel, ServiceOffering, ServicePlanName } from '../bus/platform';

export interface PlanLimits {
  /** redis: maxmemory (writes beyond it fail, nothing is evicted). */
  memoryMb?: number;
  /** postgresql and filesystem: the size `skiff services` holds the instance to (checked, shown when over). */
  sizeMb?: number;
  /** postgresql: the database's connection limit, across every app bound to it. */
  connections?: number;
}

export interface Plan {
  description: string;
  limits: PlanLimits;
}

export interface Offering {
  description: string;
  plans: Record<ServicePlanName, Plan>;
}

export const OFFERINGS: Readonly<Record<ServiceLabel, Offering>> = {
  redis: {
    description: 'Redis key-value store: a redis-server of its own, persisted (append-only file)',
    plans: {
      free: { description: '64 MB of memory', limits: { memoryMb: 64 } },
      large: { description: '512 MB of memory', limits: { memoryMb: 512 } },
    },
  },
  postgresql: {
    description: 'PostgreSQL database: a database and a role per bound app on the node\'s cluster',
    plans: {
      free: { description: '256 MB of data, 20 connections', limits: { sizeMb: 256, connections: 20 } },
      large: { description: '4 GB of data, 100 connections', limits: { sizeMb: 4096, connections: 100 } },
    },
  },
  filesystem: {
    description: 'Persistent directory shared by every instance of every bound app',
    plans: {
      free: { description: '256 MB of files', limits: { sizeMb: 256 } },
      large: { description: '4 GB of files', limits: { sizeMb: 4096 } },
    },
  },
};

export function planOf(label: ServiceLabel, plan: string): Plan | undefined {
  return Object.prototype.hasOwnProperty.call(OFFERINGS[label].plans, plan) ? OFFERINGS[label].plans[plan as ServicePlanName] : undefined;
}

/** The contract's shape of one offering. */
export function offeringOf(label: ServiceLabel): ServiceOffering {
  const offering = OFFERINGS[label];
  return {
    label,
    description: offering.description,
    plans: Object.entries(offering.plans).map(([name, plan]) => ({ name, description: plan.description })),
  };
}

/** "1.2 MB", for status details. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** "1.2 MB of 64 MB", or "... (over the plan's 64 MB)". */
export function usageDetail(bytes: number, limitMb: number | undefined): string {
  if (limitMb === undefined) return formatBytes(bytes);
  const over = bytes > limitMb * 1024 * 1024;
  return over ? `${formatBytes(bytes)}, over the plan's ${limitMb} MB` : `${formatBytes(bytes)} of ${limitMb} MB`;
}
