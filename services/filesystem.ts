// The filesystem service: a directory per instance,
// <data-dir>/services/filesystem/<id>, shared by every instance of every
// app bound to it and by nothing else. As root it is root's, group-owned
// by the instance's id of --service-ids, mode 2770: only processes with
// that group reach it, and the DEA gives it (the bind reply's `gid`) to
// the bound apps' processes alone. The directories on the way are
// traverse-only. A default ACL makes what one app writes there writable by
// the others whatever their umask (without setfacl, their umask decides).
// Unbinding forgets the app: its next start no longer gets the group.

import { spawnSync } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import type { ServiceBindReply } from '../bus/platform';
import { diskUsage, findBinary, listDir, type Backend, type BackendContext, type Health, type Stray } from './backend';
import { ensureDir, isRoot } from './layout';
import { planOf, usageDetail } from './offerings';
import type { InstanceRecord } from './store';

export class FilesystemBackend implements Backend {
  readonly label = 'filesystem' as const;
  readonly needsPort = false;
  readonly needsSid = true;
  private readonly setfacl = findBinary('setfacl');

  constructor(private readonly ctx: BackendContext) {}

  unavailable(): string | undefined {
    return undefined;
  }

  reservedPorts(): number[] {
    return [];
  }

  async start(): Promise<void> {
    ensureDir(this.ctx.layout.filesystem, 0o711);
    if (this.setfacl === undefined) this.ctx.log.warn('setfacl not found (the acl package): files apps write to a shared directory are only as writable for the other bound apps as their umask says');
  }

  async create(record: InstanceRecord): Promise<void> {
    const { layout } = this.ctx;
    if (record.sid === undefined) throw new Error(`the record of ${record.id} has no group`);
    ensureDir(layout.filesystem, 0o711);
    const dir = layout.filesystemDir(record.id);
    ensureDir(dir, 0o2770, isRoot() ? { uid: 0, gid: record.sid } : undefined);
    if (this.setfacl !== undefined) {
      const result = spawnSync(this.setfacl, ['-d', '-m', 'u::rwx,g::rwx,o::---', dir], { encoding: 'utf8' });
      if (result.status !== 0) this.ctx.log.warn('setfacl failed: the shared directory keeps each app\'s umask', { id: record.id, error: (result.stderr ?? '').trim().split('\n')[0] });
    }
  }

  async remove(record: InstanceRecord): Promise<void> {
    rmSync(this.ctx.layout.filesystemDir(record.id), { recursive: true, force: true });
  }

  async bind(record: InstanceRecord): Promise<ServiceBindReply> {
    return { credentials: { dir: this.ctx.layout.filesystemDir(record.id) }, ...(record.sid === undefined ? {} : { gid: record.sid }) };
  }

  async unbind(): Promise<void> {}

  async health(record: InstanceRecord): Promise<Health> {
    const dir = this.ctx.layout.filesystemDir(record.id);
    try {
      const info = statSync(dir);
      if (isRoot() && (info.gid !== record.sid || (info.mode & 0o7777) !== 0o2770)) {
        return { healthy: false, detail: `its directory has group ${info.gid} and mode ${(info.mode & 0o7777).toString(8)}, not ${record.sid} and 2770` };
      }
    } catch {
      return { healthy: false, detail: 'its directory is missing' };
    }
    const usage = await diskUsage(dir);
    return { healthy: true, detail: `${usageDetail(usage.bytes, planOf('filesystem', record.plan)?.limits.sizeMb)}${usage.complete ? '' : ' or more'}` };
  }

  async sweep(mine: InstanceRecord[]): Promise<Stray[]> {
    const ids = new Set(mine.filter((r) => r.service === 'filesystem').map((r) => r.id));
    return listDir(this.ctx.layout.filesystem)
      .filter((name) => !ids.has(name))
      .map((name) => ({ service: 'filesystem' as const, kind: 'directory', name: this.ctx.layout.filesystemDir(name), action: 'reported' as const }));
  }

  async stop(): Promise<void> {}
}
