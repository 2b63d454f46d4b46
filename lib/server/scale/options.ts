/**
 * The options of scale-out (`torchedit serve --redis`, `torchedit worker`, `createWorker`): where
 * Redis is, the queue's name, how jobs are retried, and where artifacts are shared. One
 * declaration each, with its default, checked in one place (a bad value is ERR_INVALID_OPTION).
 */
import { TorchEditError } from '../../errors.js';

/** Where the artifacts (images, inversions, results, Imagic results) every worker needs are kept. */
export type ArtifactStoreOptions =
  | {
      /** A directory every server and worker mounts (a shared volume). */
      type: 'dir';
      dir: string;
    }
  | {
      /** Redis itself: binary values with a TTL, each at most `maxBytes`. */
      type: 'redis';
      /** Largest artifact stored; a larger one fails its job with ERR_TOO_LARGE. Defaults to `64 MiB`. */
      maxBytes?: number;
      /** Seconds an artifact lives after it was written. Defaults to `7 days`. */
      ttlSeconds?: number;
    };

/** What servers and workers of one deployment must agree on. */
export interface ScaleOptions {
  /** The Redis URL, `redis://host:port[/db]` (also `rediss://` for TLS). Required. */
  redis: string;
  /** The BullMQ queue's name (and the prefix of the cancel channel). Defaults to `'torchedit'`. */
  queue?: string;
  /** Where artifacts are shared. Defaults to `{ type: 'redis' }`. */
  artifacts?: ArtifactStoreOptions;
  /** Runs of one job before it is failed for good (a crash or a lost worker counts one). Defaults to `3`. */
  attempts?: number;
  /** Milliseconds before the first retry; doubled for each next one (BullMQ's exponential backoff). Defaults to `1000`. */
  backoffMs?: number;
}

/** The options of a worker: the deployment's, plus its own. */
export interface WorkerOptions extends ScaleOptions {
  /** The model bundle this worker runs (a folder). Defaults to the shipped model. */
  model?: string;
  /** The name jobs call the model by (the server's name for it). Defaults to the folder's name. */
  modelName?: string;
  /** Where the model runs: `cpu`, `cuda`, `cuda:N` or `auto`. Defaults to `cpu`. */
  device?: string;
  /** Jobs this worker runs at once (one device runs one at a time: more only overlaps I/O). Defaults to `1`. */
  concurrency?: number;
  /** libtorch intra-op threads. Defaults to libtorch's own choice. */
  threads?: number;
  /**
   * Milliseconds a job's lock lasts without renewal: a worker silent this long (killed, frozen)
   * loses the job to another. Defaults to `30_000`.
   */
  lockDurationMs?: number;
  /** Milliseconds between two checks for stalled jobs (jobs whose worker lost its lock). Defaults to `30_000`. */
  stalledIntervalMs?: number;
  /** Times a job may stall (its worker lost) before it is failed. Defaults to `2`. */
  maxStalledCount?: number;
  /** On close (SIGTERM), milliseconds the running job may finish before it goes back to the queue. Defaults to `30_000`. */
  shutdownGraceMs?: number;
  /** Bytes of fetched artifacts kept in memory (LRU). Defaults to `256 MiB`. */
  cacheBytes?: number;
  /** Milliseconds a job may run before it is aborted (ERR_TIMEOUT, not retried). Defaults to `600_000`. */
  jobTimeoutMs?: number;
  /** Called with each line worth logging (job started, finished, retried, Redis errors). Defaults to none. */
  log?: (line: string) => void;
}

export interface ResolvedScaleOptions {
  redis: string;
  queue: string;
  artifacts: { type: 'dir'; dir: string } | { type: 'redis'; maxBytes: number; ttlSeconds: number };
  attempts: number;
  backoffMs: number;
}

const MIB = 1024 * 1024;

function integer(name: string, value: unknown, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
    throw new TorchEditError('ERR_INVALID_OPTION', `Expected an integer ≥ ${min} for ${name} but received ${String(value)}`, {
      option: name,
    });
  return value;
}

export function resolveScaleOptions(options: ScaleOptions): ResolvedScaleOptions {
  if (typeof options?.redis !== 'string' || !/^rediss?:\/\/[^\s]+$/.test(options.redis))
    throw new TorchEditError('ERR_INVALID_OPTION', `Expected a redis:// URL for redis but received ${String(options?.redis)}`, {
      option: 'redis',
    });
  const queue = options.queue ?? 'torchedit';
  if (!/^[\w.-]{1,64}$/.test(queue))
    throw new TorchEditError('ERR_INVALID_OPTION', `Expected a queue name of letters, digits, '.', '_' or '-' but received '${queue}'`, {
      option: 'queue',
    });
  const a = options.artifacts ?? { type: 'redis' };
  let artifacts: ResolvedScaleOptions['artifacts'];
  if (a.type === 'dir') {
    if (typeof a.dir !== 'string' || a.dir === '')
      throw new TorchEditError('ERR_INVALID_OPTION', 'Expected a directory for artifacts.dir', { option: 'artifacts.dir' });
    artifacts = { type: 'dir', dir: a.dir };
  } else if (a.type === 'redis') {
    artifacts = {
      type: 'redis',
      maxBytes: integer('artifacts.maxBytes', a.maxBytes, 64 * MIB),
      ttlSeconds: integer('artifacts.ttlSeconds', a.ttlSeconds, 7 * 24 * 3600),
    };
  } else {
    throw new TorchEditError('ERR_INVALID_OPTION', `Expected 'dir' or 'redis' for artifacts.type`, { option: 'artifacts.type' });
  }
  return {
    redis: options.redis,
    queue,
    artifacts,
    attempts: integer('attempts', options.attempts, 3),
    backoffMs: integer('backoffMs', options.backoffMs, 1000, 0),
  };
}

export interface ResolvedWorkerOptions extends ResolvedScaleOptions {
  concurrency: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
  shutdownGraceMs: number;
  cacheBytes: number;
  jobTimeoutMs: number;
}

export function resolveWorkerOptions(options: WorkerOptions): ResolvedWorkerOptions {
  return {
    ...resolveScaleOptions(options),
    concurrency: integer('concurrency', options.concurrency, 1),
    lockDurationMs: integer('lockDurationMs', options.lockDurationMs, 30_000),
    stalledIntervalMs: integer('stalledIntervalMs', options.stalledIntervalMs, 30_000),
    maxStalledCount: integer('maxStalledCount', options.maxStalledCount, 2, 0),
    shutdownGraceMs: integer('shutdownGraceMs', options.shutdownGraceMs, 30_000, 0),
    cacheBytes: integer('cacheBytes', options.cacheBytes, 256 * MIB, 0),
    jobTimeoutMs: integer('jobTimeoutMs', options.jobTimeoutMs, 600_000),
  };
}
