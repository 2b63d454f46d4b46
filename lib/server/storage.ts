/**
 * Storage that loses nothing: uploaded images, inversions, result images and Imagic results live
 * in the data directory, each as a file (or folder) named by its id with a JSON sidecar of
 * metadata, written atomically (a temporary name, then rename), so a restarted server serves every
 * id it served before. In front of the files sit two LRUs within one byte budget: the bytes of
 * images and results, and live inversions and Imagic results (native tensors), which jobs pin
 * while they use them. Counts per kind are bounded (the least recently used go first) and a
 * sweeper deletes what was not used for `ttlMs`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StableDiffusionModel } from '../model/model.js';
import { type ImagicResult, loadImagic } from '../pipelines/imagic/result.js';
import { type Inversion, loadInversion } from '../pipelines/ledits/inversion.js';
import { HttpError } from './errors.js';
import { isId, newId } from './ids.js';

export type StoredKind = 'image' | 'inversion' | 'result' | 'imagic';

/** What the sidecar `<id>.json` holds. */
export interface StoredMeta {
  id: string;
  kind: StoredKind;
  /** ISO time of creation. */
  createdAt: string;
  /** Bytes on disk. */
  bytes: number;
  /** The model an inversion or Imagic result belongs to. */
  model?: string;
  /** An image's format (`png`, `jpeg`, `webp`). */
  format?: string;
  width?: number;
  height?: number;
  /** Whatever else the route records (settings, seed, the job that made it). */
  info?: Record<string, unknown>;
}

interface Entry {
  meta: StoredMeta;
  /** Time of the last use (for the TTL). */
  lastUsed: number;
  /** Order of the last use (for the LRU: times tie within a millisecond). */
  recency: number;
}

const FOLDERS: Record<StoredKind, string> = { image: 'images', inversion: 'inversions', result: 'results', imagic: 'imagic' };
const FILES: Record<StoredKind, string> = { image: '.bin', inversion: '.safetensors', result: '.png', imagic: '' };

/** A live native object in the cache, with the number of jobs using it. */
interface LiveEntry<T> {
  value: T;
  bytes: number;
  pins: number;
  /** Deleted while pinned: disposed when the last pin goes. */
  doomed?: boolean;
}

export interface StorageLimits {
  counts: Record<StoredKind, number>;
  cacheBytes: number;
  ttlMs: number;
}

export class Storage {
  readonly dir: string;
  private readonly limits: StorageLimits;
  private readonly index: Record<StoredKind, Map<string, Entry>> = {
    image: new Map(),
    inversion: new Map(),
    result: new Map(),
    imagic: new Map(),
  };
  /** Map order is recency: the first key is the least recently used. */
  private readonly bytesCache = new Map<string, Buffer>();
  private bytesCached = 0;
  private readonly live = new Map<string, LiveEntry<Inversion | ImagicResult>>();
  private liveBytes = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private uses = 0;

  constructor(dir: string, limits: StorageLimits) {
    this.dir = dir;
    this.limits = limits;
  }

  /** Creates the folders, forgets temporary files of an interrupted write and reads the index. */
  async open(): Promise<void> {
    for (const kind of Object.keys(FOLDERS) as StoredKind[]) {
      const folder = join(this.dir, FOLDERS[kind]);
      await mkdir(folder, { recursive: true });
      for (const name of await readdir(folder)) {
        if (name.includes('.tmp-')) {
          await rm(join(folder, name), { recursive: true, force: true });
          continue;
        }
        if (!name.endsWith('.json') || !isId(name.slice(0, -5))) continue;
        const id = name.slice(0, -5);
        try {
          const meta = JSON.parse(await readFile(join(folder, name), 'utf8')) as StoredMeta;
          await stat(this.path(kind, id)); // the sidecar is written last: a missing file is a half-deleted entry
          const used = (await stat(join(folder, name))).mtimeMs;
          this.index[kind].set(id, { meta, lastUsed: used, recency: 0 });
        } catch {
          await this.removeFiles(kind, id);
        }
      }
      for (const entry of [...this.index[kind].values()].sort((a, b) => a.lastUsed - b.lastUsed)) entry.recency = ++this.uses;
      // A file without its sidecar: a write that died before committing, or a delete midway.
      for (const name of await readdir(folder)) {
        const id = name.slice(0, 32);
        if (isId(id) && !this.index[kind].has(id)) await rm(join(folder, name), { recursive: true, force: true });
      }
    }
  }

  /** Starts the TTL sweeper (unref'd: it never keeps the process alive). */
  startSweeper(intervalMs: number): void {
    if (this.limits.ttlMs === 0) return;
    this.sweeper = setInterval(() => void this.sweep(), intervalMs);
    this.sweeper.unref();
  }

  /** Deletes every unpinned object not used for `ttlMs`; resolves to how many. */
  async sweep(now = Date.now()): Promise<number> {
    if (this.limits.ttlMs === 0) return 0;
    let removed = 0;
    for (const kind of Object.keys(this.index) as StoredKind[]) {
      for (const [id, entry] of [...this.index[kind]]) {
        if (now - entry.lastUsed > this.limits.ttlMs && !this.pinned(id)) {
          await this.delete(kind, id);
          removed++;
        }
      }
    }
    return removed;
  }

  /** Stops the sweeper and disposes every live object. */
  close(): void {
    clearInterval(this.sweeper);
    for (const entry of this.live.values()) entry.value.dispose();
    this.live.clear();
    this.liveBytes = 0;
  }

  /** The file (or folder, for Imagic) of an object; `id` must be a checked id. */
  path(kind: StoredKind, id: string): string {
    if (!isId(id)) throw new Error(`not an id: ${id}`);
    return join(this.dir, FOLDERS[kind], id + FILES[kind]);
  }

  private metaPath(kind: StoredKind, id: string): string {
    return join(this.dir, FOLDERS[kind], `${id}.json`);
  }

  private temp(kind: StoredKind, id: string): string {
    return join(this.dir, FOLDERS[kind], `${id}.tmp-${randomBytes(6).toString('hex')}${FILES[kind]}`);
  }

  has(kind: StoredKind, id: unknown): id is string {
    return isId(id) && this.index[kind].has(id);
  }

  meta(kind: StoredKind, id: unknown): StoredMeta | undefined {
    if (!isId(id)) return undefined;
    const entry = this.index[kind].get(id);
    if (entry) this.touch(kind, entry);
    return entry?.meta;
  }

  count(kind: StoredKind): number {
    return this.index[kind].size;
  }

  /** Bytes on disk of each kind, and bytes held in memory. */
  usage(): { disk: Record<StoredKind, number>; cachedBytes: number; liveBytes: number } {
    const disk = { image: 0, inversion: 0, result: 0, imagic: 0 };
    for (const kind of Object.keys(disk) as StoredKind[]) for (const e of this.index[kind].values()) disk[kind] += e.meta.bytes;
    return { disk, cachedBytes: this.bytesCached, liveBytes: this.liveBytes };
  }

  private touch(kind: StoredKind, entry: Entry): void {
    const now = Date.now();
    // The sidecar's mtime is the last use after a restart; written at most once a minute.
    if (now - entry.lastUsed > 60_000) {
      const time = new Date(now);
      utimes(this.metaPath(kind, entry.meta.id), time, time).catch(() => {});
    }
    entry.lastUsed = now;
    entry.recency = ++this.uses;
  }

  /** Records a new object whose file is in place: writes its sidecar, then enforces the count limit. */
  private async commit(meta: StoredMeta): Promise<void> {
    const tmp = this.temp(meta.kind, meta.id);
    await writeFile(tmp, JSON.stringify(meta));
    await rename(tmp, this.metaPath(meta.kind, meta.id));
    this.index[meta.kind].set(meta.id, { meta, lastUsed: Date.now(), recency: ++this.uses });
    await this.enforceCount(meta.kind);
  }

  private async enforceCount(kind: StoredKind): Promise<void> {
    const index = this.index[kind];
    const max = this.limits.counts[kind];
    if (index.size <= max) return;
    const byAge = [...index.values()].sort((a, b) => a.recency - b.recency);
    for (const entry of byAge) {
      if (index.size <= max) break;
      if (!this.pinned(entry.meta.id)) await this.delete(kind, entry.meta.id);
    }
  }

  /** Writes `bytes` as a new object of `kind` (atomically) and resolves to its metadata. */
  async putBytes(
    kind: 'image' | 'result',
    bytes: Buffer,
    meta: Omit<StoredMeta, 'id' | 'kind' | 'createdAt' | 'bytes'>,
  ): Promise<StoredMeta> {
    const id = newId();
    const tmp = this.temp(kind, id);
    await writeFile(tmp, bytes);
    await rename(tmp, this.path(kind, id));
    const full: StoredMeta = { ...meta, id, kind, createdAt: new Date().toISOString(), bytes: bytes.length };
    await this.commit(full);
    this.cacheBytes(id, bytes);
    return full;
  }

  /** The bytes of an image or result, from memory or disk; undefined when there is no such id. */
  async getBytes(kind: 'image' | 'result', id: unknown): Promise<{ bytes: Buffer; meta: StoredMeta } | undefined> {
    const meta = this.meta(kind, id);
    if (!meta) return undefined;
    let bytes = this.bytesCache.get(meta.id);
    if (bytes) {
      this.bytesCache.delete(meta.id);
      this.bytesCache.set(meta.id, bytes);
    } else {
      bytes = await readFile(this.path(kind, meta.id));
      this.cacheBytes(meta.id, bytes);
    }
    return { bytes, meta };
  }

  private cacheBytes(id: string, bytes: Buffer): void {
    if (bytes.length > this.limits.cacheBytes / 4) return;
    this.bytesCache.set(id, bytes);
    this.bytesCached += bytes.length;
    this.trimCache();
  }

  private trimCache(): void {
    for (const [id, bytes] of this.bytesCache) {
      if (this.bytesCached + this.liveBytes <= this.limits.cacheBytes) break;
      this.bytesCache.delete(id);
      this.bytesCached -= bytes.length;
    }
    for (const [id, entry] of this.live) {
      if (this.bytesCached + this.liveBytes <= this.limits.cacheBytes) break;
      if (entry.pins === 0) this.dropLive(id, entry);
    }
  }

  private dropLive(id: string, entry: LiveEntry<Inversion | ImagicResult>): void {
    if (this.live.get(id) !== entry) return;
    this.live.delete(id);
    this.liveBytes -= entry.bytes;
    entry.value.dispose();
  }

  private pinned(id: string): boolean {
    return (this.live.get(id)?.pins ?? 0) > 0;
  }

  private addLive(id: string, value: Inversion | ImagicResult, bytes: number, pins: number): void {
    this.live.set(id, { value, bytes, pins });
    this.liveBytes += bytes;
    this.trimCache();
  }

  /** A live object, pinned until `release()` (an LRU hit moves it to the end). */
  private pin<T extends Inversion | ImagicResult>(id: string): { value: T; release: () => void } | undefined {
    const entry = this.live.get(id);
    if (!entry) return undefined;
    this.live.delete(id);
    this.live.set(id, entry);
    entry.pins++;
    let released = false;
    return {
      value: entry.value as T,
      release: () => {
        if (released) return;
        released = true;
        entry.pins--;
        if (entry.doomed && entry.pins === 0) this.dropLive(id, entry);
        this.trimCache();
      },
    };
  }

  /** Saves an inversion (atomically), keeps it live, and resolves to its metadata. */
  async putInversion(inversion: Inversion, model: string, info: Record<string, unknown>): Promise<StoredMeta> {
    const id = newId();
    const tmp = this.temp('inversion', id);
    await inversion.save(tmp);
    await rename(tmp, this.path('inversion', id));
    const bytes = (await stat(this.path('inversion', id))).size;
    const { width, height } = inversion.settings;
    const meta: StoredMeta = { id, kind: 'inversion', createdAt: new Date().toISOString(), bytes, model, width, height, info };
    this.addLive(id, inversion, bytes, 0);
    await this.commit(meta);
    return meta;
  }

  /**
   * Stores an uploaded inversion file after loading it with `model` (which refuses a file that
   * is not an inversion or was made with another model).
   */
  async putInversionFile(file: Buffer, modelName: string, model: StableDiffusionModel): Promise<StoredMeta> {
    const id = newId();
    const tmp = this.temp('inversion', id);
    await writeFile(tmp, file);
    let inversion: Inversion;
    try {
      inversion = await loadInversion(tmp, model);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
    await rename(tmp, this.path('inversion', id));
    const { width, height } = inversion.settings;
    const meta: StoredMeta = {
      id,
      kind: 'inversion',
      createdAt: new Date().toISOString(),
      bytes: file.length,
      model: modelName,
      width,
      height,
      info: { settings: inversion.settings, uploaded: true },
    };
    this.addLive(id, inversion, file.length, 0);
    await this.commit(meta);
    return meta;
  }

  /** The inversion `id`, loaded with `model` when it is not live, pinned until `release()`. */
  async acquireInversion(id: string, model: StableDiffusionModel): Promise<{ value: Inversion; release: () => void }> {
    const pinned = this.pin<Inversion>(id);
    if (pinned) return pinned;
    const meta = this.meta('inversion', id);
    if (!meta) throw new HttpError(404, 'ERR_NOT_FOUND', `The inversion ${id} was deleted (a storage limit or its TTL) before the job ran`);
    const inversion = await loadInversion(this.path('inversion', id), model);
    // Another request may have loaded it meanwhile: keep one.
    if (this.live.has(id)) {
      inversion.dispose();
      return this.pin<Inversion>(id)!;
    }
    this.addLive(id, inversion, meta.bytes, 0);
    return this.pin<Inversion>(id)!;
  }

  /** Saves an Imagic result as a folder (atomically: a temporary folder, then rename). */
  async putImagic(result: ImagicResult, model: string, info: Record<string, unknown>): Promise<StoredMeta> {
    const id = newId();
    const tmp = this.temp('imagic', id);
    await result.save(tmp);
    await rename(tmp, this.path('imagic', id));
    let bytes = 0;
    for (const name of await readdir(this.path('imagic', id))) bytes += (await stat(join(this.path('imagic', id), name))).size;
    const { width, height } = result.settings;
    const meta: StoredMeta = { id, kind: 'imagic', createdAt: new Date().toISOString(), bytes, model, width, height, info };
    this.addLive(id, result, bytes, 0);
    await this.commit(meta);
    return meta;
  }

  async acquireImagic(id: string, model: StableDiffusionModel): Promise<{ value: ImagicResult; release: () => void }> {
    const pinned = this.pin<ImagicResult>(id);
    if (pinned) return pinned;
    const meta = this.meta('imagic', id);
    if (!meta)
      throw new HttpError(404, 'ERR_NOT_FOUND', `The Imagic result ${id} was deleted (a storage limit or its TTL) before the job ran`);
    const result = await loadImagic(this.path('imagic', id), model);
    if (this.live.has(id)) {
      result.dispose();
      return this.pin<ImagicResult>(id)!;
    }
    this.addLive(id, result, meta.bytes, 0);
    return this.pin<ImagicResult>(id)!;
  }

  /** Deletes an object: the sidecar first (so a crash midway leaves no entry), then its file. */
  async delete(kind: StoredKind, id: string): Promise<void> {
    this.index[kind].delete(id);
    const cached = this.bytesCache.get(id);
    if (cached) {
      this.bytesCache.delete(id);
      this.bytesCached -= cached.length;
    }
    const live = this.live.get(id);
    if (live && live.pins === 0) this.dropLive(id, live);
    else if (live) live.doomed = true;
    await this.removeFiles(kind, id);
  }

  private async removeFiles(kind: StoredKind, id: string): Promise<void> {
    await rm(this.metaPath(kind, id), { force: true });
    await rm(this.path(kind, id), { recursive: true, force: true });
  }
}
