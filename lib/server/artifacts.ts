/**
 * What the routes read and write artifacts through: the server's own Storage (its data
 * directory), or with workers the shared ArtifactStore (scale/remoteArtifacts.ts). Both answer
 * the same calls; the shared one asynchronously.
 */
import type { StableDiffusionModel } from '../model/model.js';
import type { StoredKind, StoredMeta } from './storage.js';

export interface ArtifactAccess {
  /** The metadata of an artifact, or undefined (for any id, well-formed or not). */
  meta(kind: StoredKind, id: unknown): StoredMeta | undefined | Promise<StoredMeta | undefined>;
  getBytes(kind: 'image' | 'result', id: unknown): Promise<{ bytes: Buffer; meta: StoredMeta } | undefined>;
  putBytes(kind: 'image' | 'result', bytes: Buffer, meta: Omit<StoredMeta, 'id' | 'kind' | 'createdAt' | 'bytes'>): Promise<StoredMeta>;
  /** Stores an uploaded inversion file after loading it with `model` (ERR_FILE_FORMAT, ERR_MODEL_MISMATCH). */
  putInversionFile(file: Buffer, modelName: string, model: StableDiffusionModel): Promise<StoredMeta>;
}
