/**
 * A worker's memory of the artifacts it fetched: an LRU by bytes in front of the shared store, so
 * the edits that follow an inversion on the same worker do not fetch it again. Artifacts are
 * immutable (content ids), so a cached one is never stale.
 */
import type { StoredKind } from '../storage.js';
import type { ArtifactMeta, ArtifactStore, NewArtifactMeta } from './artifactStore.js';

export class CachedArtifactStore implements ArtifactStore {
  /** Map order is recency: the first key is the least recently used. */
  private readonly cache = new Map<string, { bytes: Buffer; meta: ArtifactMeta }>();
  private cached = 0;
  /** Hits and misses, for tests and logs. */
  readonly stats = { hits: 0, misses: 0 };

  constructor(
    private readonly store: ArtifactStore,
    private readonly maxBytes: number,
  ) {}

  private remember(entry: { bytes: Buffer; meta: ArtifactMeta }): void {
    const key = `${entry.meta.kind}:${entry.meta.id}`;
    if (entry.bytes.length > this.maxBytes || this.cache.has(key)) return;
    this.cache.set(key, entry);
    this.cached += entry.bytes.length;
    for (const [k, e] of this.cache) {
      if (this.cached <= this.maxBytes) break;
      this.cache.delete(k);
      this.cached -= e.bytes.length;
    }
  }

  async put(kind: StoredKind, bytes: Buffer, meta: NewArtifactMeta): Promise<ArtifactMeta> {
    const stored = await this.store.put(kind, bytes, meta);
    this.remember({ bytes, meta: stored });
    return stored;
  }

  async meta(kind: StoredKind, id: string): Promise<ArtifactMeta | undefined> {
    return this.cache.get(`${kind}:${id}`)?.meta ?? this.store.meta(kind, id);
  }

  async get(kind: StoredKind, id: string): Promise<{ bytes: Buffer; meta: ArtifactMeta } | undefined> {
    const key = `${kind}:${id}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.stats.hits++;
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    this.stats.misses++;
    const found = await this.store.get(kind, id);
    if (found) this.remember(found);
    return found;
  }

  close(): Promise<void> {
    this.cache.clear();
    this.cached = 0;
    return this.store.close();
  }
}
