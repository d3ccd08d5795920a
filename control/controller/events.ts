// An app's history for `skiff events`: what users, the platform and the
// health manager did to it, one line each, kept in KV (store.ts).

import type { Logger } from '../../bus/log';
import { describePolicy } from '../../bus/autoscale';
import { sessionAffinity } from './desired';
import type { AppEvent, AppRecord, Store } from './store';

export type EventDraft = Omit<AppEvent, 'time' | 'actor'>;

/** The events a user's change of desired state amounts to (PUT /apps/:name). */
export function describeChange(before: AppRecord, after: AppRecord): EventDraft[] {
  const events: EventDraft[] = [];
  if (before.state !== after.state) {
    events.push(after.state === 'STARTED' ? { type: 'started', description: `started with ${after.instances} instance${after.instances === 1 ? '' : 's'}` } : { type: 'stopped', description: 'stopped' });
  }
  if (JSON.stringify(before.autoscale ?? null) !== JSON.stringify(after.autoscale ?? null)) {
    events.push({ type: 'autoscale', description: after.autoscale ? `autoscale on: ${describePolicy(after.autoscale)}` : 'autoscale off' });
  }
  if (before.instances !== after.instances) events.push({ type: 'scaled', description: `instances ${before.instances} -> ${after.instances}` });
  const changed: string[] = [];
  if (before.memory !== after.memory) changed.push(`memory ${before.memory}M -> ${after.memory}M`);
  if (JSON.stringify(before.env) !== JSON.stringify(after.env)) {
    // Names only: values may be secrets.
    const names = new Set([...Object.keys(before.env), ...Object.keys(after.env)]);
    const touched = [...names].filter((k) => before.env[k] !== after.env[k]).sort();
    changed.push(`env ${touched.join(', ')}`);
  }
  if (JSON.stringify(before.uris) !== JSON.stringify(after.uris)) changed.push(`uris ${after.uris.join(', ') || '(none)'}`);
  if (sessionAffinity(before) !== sessionAffinity(after)) changed.push(`session affinity ${sessionAffinity(after) ? 'on' : 'off'}`);
  if (before.command !== after.command) changed.push(after.command === null ? 'command reset to the detected one' : `command ${after.command}`);
  if (changed.length > 0) events.push({ type: 'updated', description: changed.join('; ') });
  return events;
}

/** Records events; a failure to record never fails what was done. */
export async function recordEvents(store: Store, log: Logger, appId: string, actor: string, drafts: EventDraft[]): Promise<void> {
  const time = Math.floor(Date.now() / 1000);
  for (const draft of drafts) {
    try {
      await store.addEvent(appId, { time, actor, ...draft });
    } catch (err) {
      log.warn('could not record an app event', { droplet: appId, type: draft.type, error: (err as Error).message });
    }
  }
}
