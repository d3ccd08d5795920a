// What the host must give a DEA beyond what it checks for itself. Apps that
// watch their files (webpack, nodemon, vite, chokidar) take inotify
// instances and watches from per-user kernel limits whose defaults (128
// instances, 8192 or so watches) a few such apps use up; then they fail with
// ENOSPC or EMFILE. Stackato's seed set these values; the DEA only warns,
// since changing a sysctl is the operator's call.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const INOTIFY_MINIMUMS = { max_user_instances: 4096, max_user_watches: 524_288 } as const;
export type InotifyLimits = { [K in keyof typeof INOTIFY_MINIMUMS]: number | undefined };

/** The kernel's values; undefined where they cannot be read (no /proc, another kernel). */
export function readInotifyLimits(dir = '/proc/sys/fs/inotify'): InotifyLimits {
  const read = (name: string): number | undefined => {
    try {
      const value = Number(readFileSync(join(dir, name), 'utf8').trim());
      return Number.isInteger(value) ? value : undefined;
    } catch {
      return undefined;
    }
  };
  return { max_user_instances: read('max_user_instances'), max_user_watches: read('max_user_watches') };
}

/** The warning for limits below the minimums, with the command that fixes them; undefined when all is well. */
export function inotifyWarning(limits: InotifyLimits): string | undefined {
  const low = (Object.keys(INOTIFY_MINIMUMS) as Array<keyof typeof INOTIFY_MINIMUMS>).filter((name) => {
    const value = limits[name];
    return value !== undefined && value < INOTIFY_MINIMUMS[name];
  });
  if (low.length === 0) return undefined;
  const found = low.map((name) => `fs.inotify.${name} is ${limits[name]} (want ${INOTIFY_MINIMUMS[name]} or more)`).join(', ');
  const assignments = low.map((name) => `fs.inotify.${name}=${INOTIFY_MINIMUMS[name]}`);
  return (
    `${found}: apps that watch files may fail with ENOSPC or EMFILE; raise it with ` +
    `\`sysctl -w ${assignments.join(' ')}\` and keep it across reboots with ` +
    `\`printf '%s\\n' ${assignments.join(' ')} > /etc/sysctl.d/60-skiff-inotify.conf\``
  );
}
