/** The routes' view of the shared ArtifactStore (with workers): the same calls as the server's own Storage. */
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StableDiffusionModel } from '../../model/model.js';
import { loadInversion } from '../../pipelines/ledits/inversion.js';
import type { ArtifactAccess } from '../artifacts.js';
import { HttpError } from '../errors.js';
import { isId } from '../ids.js';
import type { StoredKind, StoredMeta } from '../storage.js';
import type { ArtifactStore } from './artifactStore.js';
import { isConnectionError } from './connection.js';

const unavailable = () =>
  new HttpError(503, 'ERR_QUEUE_UNAVAILABLE', 'The artifact store (Redis) is unreachable; retry shortly', { 'retry-after': '5' });

export class RemoteArtifacts implements ArtifactAccess {
  constructor(readonly store: ArtifactStore) {}

  private async guard<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (isConnectionError(error)) throw unavailable();
      throw error;
    }
  }

  meta(kind: StoredKind, id: unknown): Promise<StoredMeta | undefined> {
    return isId(id) ? this.guard(() => this.store.meta(kind, id)) : Promise.resolve(undefined);
  }

  getBytes(kind: 'image' | 'result' | 'inversion', id: unknown): Promise<{ bytes: Buffer; meta: StoredMeta } | undefined> {
    return isId(id) ? this.guard(() => this.store.get(kind, id)) : Promise.resolve(undefined);
  }

  putBytes(kind: 'image' | 'result', bytes: Buffer, meta: Omit<StoredMeta, 'id' | 'kind' | 'createdAt' | 'bytes'>): Promise<StoredMeta> {
    return this.guard(() => this.store.put(kind, bytes, meta));
  }

  async putInversionFile(file: Buffer, modelName: string, model: StableDiffusionModel): Promise<StoredMeta> {
    const tmp = join(tmpdir(), `torchedit-upload-${randomBytes(8).toString('hex')}.safetensors`);
    await writeFile(tmp, file);
    try {
      const inversion = await loadInversion(tmp, model);
      const { settings } = inversion;
      inversion.dispose();
      const fingerprint = await model.fingerprint();
      return await this.guard(() =>
        this.store.put('inversion', file, {
          model: modelName,
          fingerprint,
          width: settings.width,
          height: settings.height,
          info: { settings, uploaded: true },
        }),
      );
    } finally {
      await rm(tmp, { force: true });
    }
  }
}
