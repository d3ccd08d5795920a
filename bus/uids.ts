// The unprivileged uids the platform hands to untrusted code: one per app
// (allocated by the controller, used by every DEA that runs the app) and one
// per staging job (taken by a stager for the length of the job). Ranges sit
// above the uids Debian gives people (1000-59999) and its reserved block
// (60000-65535), so no login account or system user shares them; nothing
// needs an /etc/passwd entry for them.

import { UsageError } from './flags';

export interface IdRange {
  first: number;
  last: number;
}

/** Apps: `--app-uids` of the controller (allocates) and the DEA (refuses anything outside). */
export const DEFAULT_APP_UIDS: IdRange = { first: 2_000_000, last: 2_099_999 };
/** Staging jobs: `--build-uids` of the stager. */
export const DEFAULT_BUILD_UIDS: IdRange = { first: 2_100_000, last: 2_100_999 };

/**
 * Data services: one id per service instance of the `services` role
 * (`--service-ids`). A filesystem instance's directory is group-owned by
 * its id, and the DEA gives a bound app's processes that gid (`--service-gids`,
 * the same range, refusing any other); a redis instance's redis-server runs
 * as that uid.
 */
export const DEFAULT_SERVICE_IDS: IdRange = { first: 2_200_000, last: 2_299_999 };

/** Largest uid the kernel and common tools handle without trouble (below 2^31, and not (uid_t)-1 or -2). */
const MAX_UID = 2_147_483_646;

/** Parses `FIRST-LAST`; a usage error names `origin` (the flag or variable). Never includes uid 0..999 (system users). */
export function parseUidRange(text: string, origin: string): IdRange {
  const match = /^\s*(\d{1,10})\s*-\s*(\d{1,10})\s*$/.exec(text);
  if (!match) throw new UsageError(`${origin} must look like 2000000-2099999, got ${JSON.stringify(text)}`);
  const first = Number(match[1]);
  const last = Number(match[2]);
  if (first < 1000 || last > MAX_UID || first > last) {
    throw new UsageError(`${origin} must be FIRST-LAST with 1000 <= FIRST <= LAST <= ${MAX_UID}, got ${first}-${last}`);
  }
  return { first, last };
}

export function inRange(range: IdRange, id: number): boolean {
  return Number.isInteger(id) && id >= range.first && id <= range.last;
}

export function formatRange(range: IdRange): string {
  return `${range.first}-${range.last}`;
}
