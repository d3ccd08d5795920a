// What a DEA remembers about its instances across its own restarts:
// <dea-dir>/run/<instance-id>.json, owned by the DEA, outside the instance
// directories (an app must not be able to point the DEA at a pid to kill).

import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { InstanceState } from '../bus/messages';
import type { InstanceSpec } from './instance';

export interface InstanceRecord {
  spec: InstanceSpec;
  state: InstanceState;
  stateTimestamp: number;
  pid?: number;
  pidStartTime?: number;
  port?: number;
  exitStatus?: number;
  exitDescription?: string;
  crashTimestamp?: number;
}

const ID = /^[A-Za-z0-9_-]+$/;

export class RecordStore {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
  }

  async save(record: InstanceRecord): Promise<void> {
    const id = record.spec.instanceId;
    if (!ID.test(id)) throw new Error('instance id has unexpected characters');
    const path = join(this.dir, `${id}.json`);
    const temp = `${path}.tmp`;
    await writeFile(temp, JSON.stringify(record), { mode: 0o600 });
    await rename(temp, path);
  }

  async remove(instanceId: string): Promise<void> {
    if (ID.test(instanceId)) await rm(join(this.dir, `${instanceId}.json`), { force: true });
  }

  /** Every readable record; unreadable ones are returned by file name for removal. */
  async loadAll(): Promise<{ records: InstanceRecord[]; broken: string[] }> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const records: InstanceRecord[] = [];
    const broken: string[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) {
        if (name.endsWith('.tmp')) await rm(join(this.dir, name), { force: true });
        continue;
      }
      try {
        const record = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as InstanceRecord;
        if (typeof record?.spec?.instanceId !== 'string' || !ID.test(record.spec.instanceId)) throw new Error('bad record');
        records.push(record);
      } catch {
        broken.push(name);
        await rm(join(this.dir, name), { force: true });
      }
    }
    return { records, broken };
  }
}
