/**
 * Artifacts in a directory every server and worker mounts (NFS, a shared volume, one disk on one
 * machine): `<dir>/<kind>/<id>.bin` and its metadata `<id>.json`, each written atomically (a
 * temporary name, then rename). The metadata is written last: it commits the artifact, so a
 * reader never sees half of one. Nothing expires here: the volume's own policy (or a cron job
 * deleting old files) bounds it.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isId } from '../ids.js';
import type { StoredKind } from '../storage.js';
import { type ArtifactMeta, type ArtifactStore, checkContent, type NewArtifactMeta, newMeta } from './artifactStore.js';

export class DirectoryArtifactStore implements ArtifactStore {
  constructor(readonly dir: string) {}

  private path(kind: StoredKind, id: string, ext: '.bin' | '.json'): string {
    return join(this.dir, kind, id + ext);
  }

  private async atomicWrite(path: string, data: Buffer | string): Promise<void> {
    const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
    await writeFile(tmp, data);
    await rename(tmp, path);
  }

  async put(kind: StoredKind, bytes: Buffer, meta: NewArtifactMeta): Promise<ArtifactMeta> {
    const full = newMeta(kind, bytes, meta);
    const existing = await this.meta(kind, full.id);
    if (existing) return existing;
    await mkdir(join(this.dir, kind), { recursive: true });
    await this.atomicWrite(this.path(kind, full.id, '.bin'), bytes);
    await this.atomicWrite(this.path(kind, full.id, '.json'), JSON.stringify(full));
    return full;
  }

  async meta(kind: StoredKind, id: string): Promise<ArtifactMeta | undefined> {
    if (!isId(id)) return undefined;
    try {
      return JSON.parse(await readFile(this.path(kind, id, '.json'), 'utf8')) as ArtifactMeta;
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async get(kind: StoredKind, id: string): Promise<{ bytes: Buffer; meta: ArtifactMeta } | undefined> {
    const meta = await this.meta(kind, id);
    if (!meta) return undefined;
    const bytes = await readFile(this.path(kind, id, '.bin'));
    checkContent(kind, id, bytes);
    return { bytes, meta };
  }

  async close(): Promise<void> {}
}
