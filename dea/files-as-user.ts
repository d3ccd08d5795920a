// `dea.<id>.files` as the instance's own uid. A DEA running as root reads
// nothing of an app's directory with root's rights: each read runs in a
// short-lived child, `setpriv --reuid=U --regid=U --clear-groups -- node -`,
// whose code (files.ts, compiled, plus one call) arrives on its stdin, so
// the uid needs no access to the DEA's own files. What the app's owner
// could not read (a file it made unreadable, anything outside its
// directory) the reply refuses; the reply's shape is files.ts's.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FILES_MAX_SLICE, type FilesReply } from '../bus/platform';
import { readInstancePath, type SliceRequest } from './files';

export interface RunAs {
  uid: number;
  gid: number;
  /** Supplementary groups (the gids of the app's bound services); none when absent. */
  groups?: number[];
}

/** setpriv's group arguments: exactly `groups` as supplementary groups, or none at all. */
export function groupArgs(runAs: RunAs): string[] {
  return runAs.groups !== undefined && runAs.groups.length > 0 ? [`--groups=${runAs.groups.join(',')}`] : ['--clear-groups'];
}

/** A reply (a slice of at most FILES_MAX_SLICE, base64 in JSON) is well under this. */
const MAX_OUTPUT = 4 * FILES_MAX_SLICE;
const DEFAULT_TIMEOUT_MS = 10_000;
/** Reads at once per DEA; more wait their turn (each is a node process). */
const MAX_CONCURRENT = 4;

const compiled = new Map<string, string>();

/** files.ts as compiled beside this module (dist/dea/files.js): what the child runs. */
export const HELPER_FILE = join(__dirname, 'files.js');

function helperSource(file: string): string {
  let source = compiled.get(file);
  if (source === undefined) {
    source = readFileSync(file, 'utf8');
    compiled.set(file, source);
  }
  return source;
}

/** The child's whole program: files.ts, then one call whose reply goes to stdout as JSON. */
export function helperProgram(instanceDir: string, request: SliceRequest, file = HELPER_FILE): string {
  const args = [JSON.stringify(instanceDir), JSON.stringify({ path: request.path, offset: request.offset, length: request.length }), String(FILES_MAX_SLICE)];
  return `${helperSource(file)}\n;exports.readInstancePath(${args.join(', ')}).then(` +
    '(reply) => process.stdout.write(JSON.stringify(reply)), ' +
    '(err) => { process.stderr.write(String(err && err.message)); process.exitCode = 1; });\n';
}

export interface FilesAsUserOptions {
  timeoutMs?: number;
  /** The node binary for the child; this process's own by default. */
  node?: string;
  /** The compiled files.ts; HELPER_FILE by default (tests running the TypeScript give dist's). */
  helperFile?: string;
  onFailure?: (detail: string) => void;
}

let running = 0;
const waiting: Array<() => void> = [];

async function turn(): Promise<() => void> {
  if (running >= MAX_CONCURRENT) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  return () => {
    running--;
    waiting.shift()?.();
  };
}

/**
 * Reads a path of an instance as `runAs` (the app's uid): undefined runs it
 * in this process, with this process's rights (a DEA that is not root).
 */
export async function readInstancePathAs(runAs: RunAs | undefined, instanceDir: string, request: SliceRequest, options: FilesAsUserOptions = {}): Promise<FilesReply> {
  if (runAs === undefined) return readInstancePath(instanceDir, request, FILES_MAX_SLICE);
  const done = await turn();
  try {
    return await runHelper(runAs, instanceDir, request, options);
  } finally {
    done();
  }
}

function runHelper(runAs: RunAs, instanceDir: string, request: SliceRequest, options: FilesAsUserOptions): Promise<FilesReply> {
  const failed = (detail: string): FilesReply => {
    options.onFailure?.(detail);
    return { error: 'the instance\'s files could not be read (see the DEA log)', code: 'not_found' };
  };
  let program: string;
  try {
    program = helperProgram(instanceDir, request, options.helperFile);
  } catch (error) {
    return Promise.resolve(failed(`files helper code unreadable: ${(error as Error).message}`));
  }
  return new Promise((resolve) => {
    const child = spawn('setpriv', [
      '--pdeathsig', 'SIGKILL', `--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, ...groupArgs(runAs), '--',
      options.node ?? process.execPath, '-',
    ], { cwd: '/', env: { PATH: '/usr/bin:/bin' }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = '';
    let settled = false;
    const finish = (reply: FilesReply) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(reply);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(failed(`files helper took longer than ${(options.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000} s`));
    }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.stdout!.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > MAX_OUTPUT) {
        child.kill('SIGKILL');
        finish(failed('files helper answered too much'));
        return;
      }
      out.push(chunk);
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      if (err.length < 2000) err += chunk;
    });
    child.stdin!.on('error', () => {});
    child.once('error', (error) => finish(failed(`files helper could not start: ${error.message}`)));
    child.once('close', (code, signal) => {
      if (code !== 0) {
        finish(failed(`files helper exited with ${signal ?? code}: ${err.trim().split('\n').slice(-3).join(' | ')}`));
        return;
      }
      try {
        finish(JSON.parse(Buffer.concat(out).toString('utf8')) as FilesReply);
      } catch {
        finish(failed('files helper answered no JSON'));
      }
    });
    child.stdin!.end(program);
  });
}
