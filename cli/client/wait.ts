// Waiting for an app's instances to run, after push, start and restart.

import type { Api, Query } from './api';
import type { InstanceInfo } from './types';

export class CliError extends Error {
  override name = 'CliError';
}

export interface InstanceSummary {
  running: number;
  done: boolean;
  /** "1/2 running (1 STARTING)" */
  text: string;
}

/**
 * `notBefore` (epoch seconds): instances that came up earlier are the old
 * version (a push that replaces a running app) and do not count.
 */
export function summariseInstances(instances: readonly InstanceInfo[], desired: number, notBefore = 0): InstanceSummary {
  const fresh = (i: InstanceInfo) => i.since === undefined || i.since >= notBefore;
  const running = instances.filter((i) => i.state === 'RUNNING' && fresh(i)).length;
  const others = new Map<string, number>();
  for (const instance of instances) {
    if (instance.state === 'RUNNING' && fresh(instance)) continue;
    const state = instance.state === 'RUNNING' ? 'RUNNING (old)' : instance.state;
    others.set(state, (others.get(state) ?? 0) + 1);
  }
  const detail = [...others].sort(([a], [b]) => a.localeCompare(b)).map(([state, n]) => `${n} ${state}`).join(', ');
  return { running, done: running >= desired, text: `${running}/${desired} running${detail === '' ? '' : ` (${detail})`}` };
}

export interface WaitOptions {
  api: Api;
  name: string;
  query: Query;
  desired: number;
  timeoutMs: number;
  notBefore?: number;
  pollMs?: number;
  /** Called when the summary text changes. */
  onProgress?: (text: string) => void;
}

export async function waitForInstances(options: WaitOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let last = '';
  for (;;) {
    const reply = await options.api.json<{ instances?: InstanceInfo[] }>('GET', `/apps/${encodeURIComponent(options.name)}/instances`, { query: options.query });
    const summary = summariseInstances(reply?.instances ?? [], options.desired, options.notBefore);
    if (summary.text !== last) {
      last = summary.text;
      options.onProgress?.(summary.text);
    }
    if (summary.done) return;
    if (Date.now() >= deadline) {
      throw new CliError(
        `app "${options.name}" is not running after ${Math.round(options.timeoutMs / 1000)} s: ${summary.text}; see \`skiff logs ${options.name}\` and \`skiff crashes ${options.name}\``,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000));
  }
}
