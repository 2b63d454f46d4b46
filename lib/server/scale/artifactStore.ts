/**
 * The artifacts a scale-out deployment shares: uploaded images, inversions, result images and
 * Imagic results, needed by whichever worker takes the next job. An `ArtifactStore` holds bytes
 * with metadata; two implementations: a directory on a shared volume (directoryStore.ts) and Redis
 * itself (redisStore.ts). Ids are content ids, the first 128 bits of SHA-256 over the kind and the
 * bytes: a retried job stores the same bytes under the same id (a retry never duplicates), and a
 * reader checks the bytes against their id, so a torn or corrupted artifact is an error, never a
 * wrong result. Every inversion and Imagic result records the fingerprint of the model that made
 * it, checked before it is used (ERR_MODEL_MISMATCH).
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HttpError } from '../errors.js';
import type { StoredKind, StoredMeta } from '../storage.js';

/** What an artifact records besides its bytes (as the server's own storage does), plus the model fingerprint. */
export interface ArtifactMeta extends StoredMeta {
  /** The fingerprint of the model an inversion or Imagic result was made with. */
  fingerprint?: string;
}

export type NewArtifactMeta = Omit<ArtifactMeta, 'id' | 'kind' | 'createdAt' | 'bytes'>;

export interface ArtifactStore {
  /** Stores `bytes` (idempotent: the same bytes are the same id) and resolves to the metadata. */
  put(kind: StoredKind, bytes: Buffer, meta: NewArtifactMeta): Promise<ArtifactMeta>;
  /** The metadata of an artifact; undefined when there is none. */
  meta(kind: StoredKind, id: string): Promise<ArtifactMeta | undefined>;
  /** The bytes and metadata, checked against the id; undefined when there is none. */
  get(kind: StoredKind, id: string): Promise<{ bytes: Buffer; meta: ArtifactMeta } | undefined>;
  close(): Promise<void>;
}

/** The content id of `bytes` as an artifact of `kind`: 32 hex digits, like every id of the service. */
export function contentId(kind: StoredKind, bytes: Buffer): string {
  return createHash('sha256').update(kind).update('\0').update(bytes).digest('hex').slice(0, 32);
}

/** Throws ERR_ARTIFACT_CORRUPT when the bytes read are not the ones the id names. */
export function checkContent(kind: StoredKind, id: string, bytes: Buffer): void {
  if (contentId(kind, bytes) !== id)
    throw new HttpError(500, 'ERR_ARTIFACT_CORRUPT', `The stored ${kind} ${id} does not match its content id (torn or corrupted)`);
}

export function newMeta(kind: StoredKind, bytes: Buffer, meta: NewArtifactMeta): ArtifactMeta {
  return { ...meta, id: contentId(kind, bytes), kind, createdAt: new Date().toISOString(), bytes: bytes.length };
}

/**
 * A folder (an Imagic result is `imagic.safetensors` + `unet.pt`) as one buffer: a JSON header
 * line `{ files: [[name, bytes], …] }` then the files' bytes in that order. Names sorted, so the
 * same folder is the same bytes (and the same content id).
 */
export async function packFolder(dir: string): Promise<Buffer> {
  const names = (await readdir(dir)).sort();
  const parts = await Promise.all(names.map((name) => readFile(join(dir, name))));
  const header = JSON.stringify({ files: names.map((name, i) => [name, parts[i].length]) });
  return Buffer.concat([Buffer.from(`${header}\n`), ...parts]);
}

export async function unpackFolder(bytes: Buffer, dir: string): Promise<void> {
  const end = bytes.indexOf(10);
  const { files } = JSON.parse(bytes.subarray(0, end).toString('utf8')) as { files: [string, number][] };
  await mkdir(dir, { recursive: true });
  let offset = end + 1;
  for (const [name, length] of files) {
    if (!/^[\w.-]+$/.test(name)) throw new HttpError(500, 'ERR_ARTIFACT_CORRUPT', `A packed folder names a file ${JSON.stringify(name)}`);
    await writeFile(join(dir, name), bytes.subarray(offset, offset + length));
    offset += length;
  }
}
