/**
 * Artifacts in Redis itself, for deployments without a shared volume: each artifact is two keys,
 * `<queue>:artifact:<kind>:<id>:data` (the bytes, a binary value) and `…:meta` (JSON), both with
 * a TTL. Redis holds everything in memory, so an artifact is at most `maxBytes` (a larger one is
 * ERR_TOO_LARGE): fine for images, inversions and small models' Imagic results; use a directory
 * for large ones.
 */
import type { Redis } from 'ioredis';
import { HttpError } from '../errors.js';
import { isId } from '../ids.js';
import type { StoredKind } from '../storage.js';
import { type ArtifactMeta, type ArtifactStore, checkContent, type NewArtifactMeta, newMeta } from './artifactStore.js';

export interface RedisArtifactStoreOptions {
  /** The key prefix (the queue's name). */
  prefix: string;
  maxBytes: number;
  ttlSeconds: number;
}

export class RedisArtifactStore implements ArtifactStore {
  constructor(
    private readonly redis: Redis,
    private readonly options: RedisArtifactStoreOptions,
  ) {}

  private key(kind: StoredKind, id: string, part: 'data' | 'meta'): string {
    return `${this.options.prefix}:artifact:${kind}:${id}:${part}`;
  }

  async put(kind: StoredKind, bytes: Buffer, meta: NewArtifactMeta): Promise<ArtifactMeta> {
    if (bytes.length > this.options.maxBytes)
      throw new HttpError(
        413,
        'ERR_TOO_LARGE',
        `The ${kind} is ${bytes.length} bytes, more than the Redis artifact store takes (${this.options.maxBytes}); use a directory store`,
      );
    const full = newMeta(kind, bytes, meta);
    const existing = await this.meta(kind, full.id);
    if (existing) return existing;
    const ttl = this.options.ttlSeconds;
    // The data first, then the metadata that commits it (a MULTI: both or neither).
    await this.redis
      .multi()
      .set(this.key(kind, full.id, 'data'), bytes, 'EX', ttl)
      .set(this.key(kind, full.id, 'meta'), JSON.stringify(full), 'EX', ttl)
      .exec();
    return full;
  }

  async meta(kind: StoredKind, id: string): Promise<ArtifactMeta | undefined> {
    if (!isId(id)) return undefined;
    const text = await this.redis.get(this.key(kind, id, 'meta'));
    return text === null ? undefined : (JSON.parse(text) as ArtifactMeta);
  }

  async get(kind: StoredKind, id: string): Promise<{ bytes: Buffer; meta: ArtifactMeta } | undefined> {
    const meta = await this.meta(kind, id);
    if (!meta) return undefined;
    const bytes = await this.redis.getBuffer(this.key(kind, id, 'data'));
    if (bytes === null) return undefined; // expired between the two reads
    checkContent(kind, id, bytes);
    return { bytes, meta };
  }

  async close(): Promise<void> {}
}
