// Shapes of the controller API's answers (control/API.md), as far as the CLI reads them.

import type { AutoscalePolicy } from '../../bus/autoscale';

export interface App {
  name: string;
  id?: string;
  /** FLAPPING: started, with an index the health manager backs off (crash loop). */
  state: 'STARTED' | 'STOPPED' | 'FLAPPING' | string;
  instances: number;
  runningInstances?: number;
  memory: number;
  uris: string[];
  env?: Record<string, string>;
  staging?: { runtime?: string | null; framework?: string | null; command?: string | null } | null;
  version?: string | null;
  owner?: string;
  /** `last_updated`: when the desired state last changed (epoch seconds, the platform's clock). */
  meta?: { created?: number; updated?: number; last_updated?: number };
  package_state?: 'PENDING' | 'STAGING' | 'STAGED' | 'FAILED' | string;
  staging_error?: string | null;
  /** Why a started app's index found no DEA (control/API.md); null when all did. */
  placement_error?: string | null;
  droplet?: string | null;
  command?: string | null;
  session_affinity?: boolean;
  /** Names of the bound service instances. */
  services?: string[];
  /** `skiff autoscale`; null or absent: off. */
  autoscale?: AutoscalePolicy | null;
}

/** A service instance (control/API.md, Data services). */
export interface ServiceInstance {
  id?: string;
  name: string;
  service: string;
  plan: string;
  owner?: string;
  node?: string | null;
  state?: string;
  bound_apps?: string[];
  health?: { healthy?: boolean | null; detail?: string };
}

export interface ServiceOffering {
  label: string;
  description?: string;
  plans?: Array<{ name: string; description?: string }>;
}

export interface InstanceInfo {
  index: number;
  state: string;
  since?: number;
  host?: string;
  port?: number;
  instance?: string;
  version?: string;
}

export interface InstanceStats {
  state: string;
  stats?: {
    name?: string;
    host?: string;
    port?: number;
    uris?: string[];
    uptime?: number;
    mem_quota?: number;
    disk_quota?: number;
    fds_quota?: number;
    usage?: { cpu?: number; mem?: number; disk?: number; time?: string };
  };
}

export interface Crash {
  instance: string;
  index?: number;
  since: number;
  reason?: string;
  exit_status?: number | null;
}

export interface Info {
  name?: string;
  version?: string;
  description?: string;
  user?: string;
  /** Where apps are reached, e.g. "http://localhost:8080" (Skiff addition, see control/API.md). */
  router_url?: string;
  /** Default app domain (Skiff addition, see control/API.md). */
  domain?: string;
  limits?: { memory?: number; apps?: number };
  usage?: { memory?: number; apps?: number };
}

export interface User {
  email: string;
  admin?: boolean;
}

/** Started as far as desired state goes: a FLAPPING app is a started one whose instances keep crashing. */
export function isStarted(app: Pick<App, 'state'> | undefined): boolean {
  return app?.state === 'STARTED' || app?.state === 'FLAPPING';
}
