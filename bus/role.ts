import type { Logger } from './log';

/**
 * Resolves at a role's first SIGTERM or SIGINT, logging `message` with the
 * signal. The handlers stay installed, so a second signal while the role
 * stops is ignored rather than ending the process half-way (the roles'
 * own grace periods bound the stop).
 */
export function untilStopSignal(log: Logger, message = 'stopping'): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      log.info(message, { signal });
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
