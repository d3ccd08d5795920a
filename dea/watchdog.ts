// Takes a SIGKILLed DEA's instances with it. The kernel's parent-death signal
// (setpriv --pdeathsig) reaches only each instance's first process, not what
// that started (`sh -c "npm start"` -> node). This tiny shell process, spawned
// once per DEA, reads the instances' process groups on a pipe; when the pipe
// ends - the DEA exited or was killed, however - it kills the groups still
// listed. It runs in its own session so a Ctrl-C to the DEA's terminal does not
// end it first, and it uses no CPU while it waits.

import { spawn, type ChildProcess } from 'node:child_process';

const SCRIPT = `
groups=""
while read -r op id; do
  case "$id" in ''|*[!0-9]*) continue;; esac
  case "$op" in
    add) groups="$groups $id";;
    del) kept=""; for g in $groups; do [ "$g" = "$id" ] || kept="$kept $g"; done; groups="$kept";;
  esac
done
for g in $groups; do kill -KILL "-$g" 2>/dev/null; done
`;

export class GroupWatchdog {
  private child: ChildProcess | undefined;

  start(): void {
    this.child = spawn('/bin/sh', ['-c', SCRIPT], { stdio: ['pipe', 'ignore', 'ignore'], detached: true, env: { PATH: '/usr/bin:/bin' } });
    this.child.stdin!.on('error', () => {}); // a watchdog that died must not take the DEA down
    this.child.unref();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  watch(pgid: number): void {
    this.send(`add ${pgid}`);
  }

  forget(pgid: number): void {
    this.send(`del ${pgid}`);
  }

  private send(line: string): void {
    const stdin = this.child?.stdin;
    if (stdin && !stdin.destroyed) stdin.write(line + '\n');
  }

  /** Ends the watchdog; groups still listed are killed. */
  close(): void {
    this.child?.stdin?.end();
    this.child = undefined;
  }
}
