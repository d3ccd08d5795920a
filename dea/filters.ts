// Which instances a `dea.stop` or `dea.find.droplet` addresses.

import type { DeaStop, InstanceState } from '../bus/messages';

export interface FilterableInstance {
  appId: string;
  version: string;
  instanceId: string;
  index: number;
  state: InstanceState;
}

/** Every given filter must match; an absent filter matches all. */
export function matchesFilters(instance: FilterableInstance, filters: DeaStop): boolean {
  if (instance.appId !== filters.droplet) return false;
  if (filters.version !== undefined && instance.version !== filters.version) return false;
  if (filters.instances !== undefined && !filters.instances.includes(instance.instanceId)) return false;
  if (filters.indices !== undefined && !filters.indices.includes(instance.index)) return false;
  if (filters.states !== undefined && !filters.states.includes(instance.state)) return false;
  return true;
}

/**
 * A stop ends live instances. A crashed instance is only kept for its files
 * and crash record; a stop removes it only when named by id or by a CRASHED
 * state filter, so `skiff stop` does not erase what `skiff crashes` and
 * `skiff files` show.
 */
export function stopTargets<T extends FilterableInstance>(instances: Iterable<T>, filters: DeaStop): T[] {
  const targets: T[] = [];
  for (const instance of instances) {
    if (!matchesFilters(instance, filters)) continue;
    if (instance.state === 'STOPPED' || instance.state === 'DELETED') continue;
    if (instance.state === 'CRASHED' && !filters.instances?.includes(instance.instanceId) && !filters.states?.includes('CRASHED')) continue;
    targets.push(instance);
  }
  return targets;
}
