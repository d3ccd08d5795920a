// The stager's settings in the config store (`stager.<setting>` in
// skiff_config), applied without a restart. A flag or environment variable
// pins a setting: the store does not override it.

import type { ComponentConfig } from '../../bus/config';
import type { Logger } from '../../bus/log';
import { checkSetting } from '../../bus/settings';

export interface LiveTargets {
  service: { setMaxJobs(n: number): void; readonly maxJobs: number };
  stager: { setCommandTimeout(ms: number): void; readonly commandTimeoutMs: number };
}

export interface LiveDefaults {
  maxJobs: number;
  commandTimeoutMs: number;
  pinned: { maxJobs: boolean; commandTimeout: boolean };
}

/** `stager.max_jobs` (jobs at once) and `stager.command_timeout` (seconds per staging command). */
export const LIVE_SETTINGS = ['max_jobs', 'command_timeout'] as const;

export function applyLiveSettings(config: ComponentConfig, targets: LiveTargets, defaults: LiveDefaults, logger: Logger): void {
  const apply = (setting: string, value: unknown) => {
    if (setting === 'max_jobs' && !defaults.pinned.maxJobs) {
      const checked = value === undefined ? { ok: true as const, value: defaults.maxJobs } : checkSetting('stager.max_jobs', value);
      if (!checked.ok) {
        logger.warn('ignoring invalid stager.max_jobs', { error: checked.error });
        return;
      }
      const n = checked.value as number;
      if (n !== targets.service.maxJobs) logger.info('job limit changed', { max_jobs: n });
      targets.service.setMaxJobs(n);
    } else if (setting === 'command_timeout' && !defaults.pinned.commandTimeout) {
      const checked = value === undefined ? { ok: true as const, value: defaults.commandTimeoutMs / 1000 } : checkSetting('stager.command_timeout', value);
      if (!checked.ok) {
        logger.warn('ignoring invalid stager.command_timeout', { error: checked.error });
        return;
      }
      const seconds = checked.value as number;
      if (seconds * 1000 !== targets.stager.commandTimeoutMs) logger.info('command timeout changed', { seconds });
      targets.stager.setCommandTimeout(seconds * 1000);
    }
  };
  for (const setting of LIVE_SETTINGS) apply(setting, config.get(setting));
  config.onChange(apply);
}
