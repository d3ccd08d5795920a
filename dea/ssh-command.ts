// What an ssh session runs: the user's command line (or an interactive shell)
// behind the instance's launcher, so it gets the app's user and limits. A
// terminal comes from util-linux `script`, which allocates a pseudo-terminal
// without a native addon; its size is set with `stty` before the command.

export interface SessionCommand {
  command: string;
  tty: boolean;
  cols: number;
  rows: number;
}

export function sessionArgv(launcher: readonly string[], request: SessionCommand): string[] {
  if (!request.tty) {
    // No command and no terminal: sh reads its commands from stdin (`echo ls | skiff ssh app`).
    return [...launcher, '/bin/sh', ...(request.command === '' ? [] : ['-c', request.command])];
  }
  // A newline, not `;`, so the user's line parses as if alone (a trailing `&` or comment stays theirs).
  const script = `stty cols ${request.cols} rows ${request.rows} 2>/dev/null\n${request.command === '' ? 'exec /bin/sh' : request.command}`;
  // -q no banners, -f flush at once, -e exit with the command's status, -c the command; the typescript goes nowhere.
  return [...launcher, 'script', '-qfec', script, '/dev/null'];
}

/** `stty` setting a terminal's size (run as the app's user, so it can touch only its own terminals). */
export function resizeArgv(launcher: readonly string[], terminal: string, cols: number, rows: number): string[] {
  return [...launcher, 'stty', '-F', terminal, 'cols', String(cols), 'rows', String(rows)];
}

/** A session's terminal is a pty slave; anything else found on a process's stdin is left alone. */
export function isPtySlave(path: string): boolean {
  return /^\/dev\/pts\/\d+$/.test(path);
}

/** The environment of a session: the app's, plus TERM on a terminal. */
export function sessionEnv(appEnv: Record<string, string>, tty: boolean, term: string | undefined): Record<string, string> {
  const env = { ...appEnv };
  if (tty) env.TERM = term ?? 'xterm';
  return env;
}

/** A shell's view of how a process ended: its code, or 128 + the signal's number. */
export function exitStatus(code: number | null, signalNumber: number | undefined): number {
  if (code !== null) return code;
  return signalNumber !== undefined ? 128 + signalNumber : 255;
}
