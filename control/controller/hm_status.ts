// Asks the health manager which indices of an app version it reports
// FLAPPING (`healthmanager.status`). The reconcile pass leaves those to its
// backoff, and the app view shows the app as FLAPPING. A health manager
// answers from memory, so the wait is short: no answer means "none known".

import { BusRequestError, type Bus } from '../../bus/connection';
import { Subjects } from '../../bus/subjects';
import { validateHmFlappingStatusReply } from '../../bus/validate';

export type FlappingAnswer =
  | { ok: true; indices: Set<number> }
  /** `malformed`: a manager answered with something that is not a FLAPPING reply (count it as a rejection). */
  | { ok: false; reason: 'no-health-manager' | 'malformed' | 'unavailable'; error: string };

export async function askFlapping(bus: Bus, droplet: string, version: string, timeoutMs: number): Promise<FlappingAnswer> {
  let reply: unknown;
  try {
    reply = await bus.request(Subjects.healthmanagerStatus, { droplet, version, state: 'FLAPPING' }, timeoutMs);
  } catch (err) {
    const failure = err instanceof BusRequestError ? err.reason : undefined;
    const reason = failure === 'no-responders' ? 'no-health-manager' : failure === 'bad-reply' ? 'malformed' : 'unavailable';
    return { ok: false, reason, error: (err as Error).message };
  }
  const checked = validateHmFlappingStatusReply(reply);
  if (!checked.ok) return { ok: false, reason: 'malformed', error: checked.error };
  return { ok: true, indices: new Set(checked.value.indices.map((i) => i.index)) };
}

/** The state an app view shows: FLAPPING while a started app has an index the health manager reports flapping. */
export function shownState(desired: 'STARTED' | 'STOPPED', flapping: FlappingAnswer | undefined): 'STARTED' | 'STOPPED' | 'FLAPPING' {
  if (desired !== 'STARTED' || flapping === undefined || !flapping.ok) return desired;
  return flapping.indices.size > 0 ? 'FLAPPING' : 'STARTED';
}
