/**
 * A scale-out worker (`torchedit worker`, `createWorker`): a BullMQ Worker that loads its model
 * once and runs the jobs servers queue (invert, edit, generate, Imagic) through the same runner
 * as the in-process server, reading and writing artifacts in the shared store. It reports
 * progress with `job.updateProgress`, refuses a job for another model (ERR_MODEL_MISMATCH),
 * stops a job cancelled from any server (the cancel channel aborts its AbortSignal), and on
 * `close()` (SIGTERM) lets the running job finish within `shutdownGraceMs`, then returns it to the
 * queue for another worker. A worker that dies loses its job lock; BullMQ's stalled-job check on
 * another worker hands the job on (up to `maxStalledCount` times), and retries failed attempts
 * with exponential backoff.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { type Job, WaitingError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { LoadModelOptions, StableDiffusionModel } from '../../model/model.js';
import { defaultModelPath, loadModel } from '../../model/model.js';
import { configure } from '../../runtime.js';
import type { JobProgress } from '../../jobs.js';
import { progressRecord } from '../jobLog.js';
import { runJob } from '../jobSpec.js';
import { artifactEnv } from './artifactEnv.js';
import { CachedArtifactStore } from './artifactCache.js';
import type { ArtifactStore } from './artifactStore.js';
import { isCancelRequested, listenForCancels } from './cancelChannel.js';
import { redisConnection } from './connection.js';
import { DirectoryArtifactStore } from './directoryStore.js';
import { encodeFailure, finalFailure } from './jobFailure.js';
import { type ResolvedWorkerOptions, resolveWorkerOptions, type WorkerOptions } from './options.js';
import type { QueuedJobData } from './queuedJob.js';
import { RedisArtifactStore } from './redisStore.js';

/** A running worker. */
export interface TorchEditWorker {
  /** The BullMQ worker (its events: `completed`, `failed`, `stalled`…). */
  readonly worker: Worker<QueuedJobData>;
  /** `host:pid`, as jobs record it. */
  readonly name: string;
  readonly model: StableDiffusionModel;
  readonly fingerprint: string;
  /** Stops taking jobs, finishes (or after the grace returns) the running ones, disconnects, disposes the model. */
  close(): Promise<void>;
}

/** The artifact store the options name, on `connection` when it is Redis. */
export function openArtifactStore(options: ResolvedWorkerOptions['artifacts'], connection: Redis, prefix: string): ArtifactStore {
  return options.type === 'dir'
    ? new DirectoryArtifactStore(options.dir)
    : new RedisArtifactStore(connection, { prefix, maxBytes: options.maxBytes, ttlSeconds: options.ttlSeconds });
}

/** Progress as a job record shows it, sent at most every 100 ms (a Redis write each) but always the last step. */
function progressReporter(job: Job, onError: (error: Error) => void): (p: JobProgress) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < 100 && p.step < p.total) return;
    last = now;
    const record = progressRecord(p);
    job.updateProgress(record as unknown as object).catch(onError);
  };
}

/** Starts a worker; resolves once its model is loaded and it listens for jobs and cancels. */
export async function createWorker(options: WorkerOptions): Promise<TorchEditWorker> {
  const o = resolveWorkerOptions(options);
  const log = options.log ?? (() => {});
  const onError = (error: Error) => log(`redis: ${error.message}`);
  if (options.threads !== undefined) configure({ threads: options.threads });
  const modelPath = options.model ?? defaultModelPath;
  const modelName = options.modelName ?? basename(modelPath);
  const model = await loadModel(modelPath, { device: options.device as LoadModelOptions['device'] });
  const fingerprint = await model.fingerprint();
  const name = `${hostname()}:${process.pid}`;
  const tmpDir = await mkdtemp(join(tmpdir(), 'torchedit-worker-'));

  const connection = redisConnection(o.redis, 'blocking', onError);
  const subscriber = redisConnection(o.redis, 'blocking', onError);
  const store = new CachedArtifactStore(openArtifactStore(o.artifacts, connection, o.queue), o.cacheBytes);
  /** Why a running job was aborted, by id: a cancel from a server, or this worker's shutdown. */
  const reasons = new Map<string, 'cancel' | 'shutdown'>();
  const active = new Set<string>();

  const processor = async (job: Job<QueuedJobData>, token?: string, signal?: AbortSignal) => {
    const { spec, fingerprint: wanted, model: wantedName, prefix } = job.data;
    const id = job.id!;
    if (wanted !== fingerprint)
      throw finalFailure(
        'ERR_MODEL_MISMATCH',
        `The job needs model ${wantedName} (fingerprint ${wanted.slice(0, 12)}); worker ${name} runs ${modelName} (${fingerprint.slice(0, 12)})`,
      );
    if (await isCancelRequested(connection, o.queue, id)) throw finalFailure('ERR_ABORTED', 'Cancelled before it started');
    log(`job ${id} (${spec.kind}) started, attempt ${job.attemptsStarted}`);
    const timeout = AbortSignal.timeout(o.jobTimeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const env = artifactEnv({ store, model, modelName, fingerprint, prefix, tmpDir });
    active.add(id);
    try {
      const result = await runJob(spec, env, { signal: combined, onProgress: progressReporter(job, onError) });
      log(`job ${id} done`);
      return result;
    } catch (error) {
      const reason = reasons.get(id);
      if (reason === 'cancel') throw finalFailure('ERR_ABORTED', 'Cancelled while running');
      if (reason === 'shutdown') {
        // Back to the queue for another worker, without spending an attempt.
        await job.moveToWait(token);
        log(`job ${id} returned to the queue (shutdown)`);
        throw new WaitingError();
      }
      if (timeout.aborted) throw finalFailure('ERR_TIMEOUT', `The job ran longer than ${o.jobTimeoutMs} ms and was aborted`);
      log(`job ${id} failed: ${(error as Error).message}`);
      throw encodeFailure(error);
    } finally {
      active.delete(id);
      reasons.delete(id);
    }
  };

  const worker = new Worker<QueuedJobData>(o.queue, processor, {
    connection,
    name,
    concurrency: o.concurrency,
    lockDuration: o.lockDurationMs,
    stalledInterval: o.stalledIntervalMs,
    maxStalledCount: o.maxStalledCount,
    autorun: false,
  });
  worker.on('error', onError);
  worker.on('stalled', (id) => log(`job ${id} stalled (its worker was lost): back in the queue`));
  await listenForCancels(subscriber, o.queue, (id) => {
    if (worker.cancelJob(id, 'cancel')) {
      reasons.set(id, 'cancel');
      log(`job ${id} cancelled`);
    }
  });
  void worker.run().catch(onError);
  await worker.waitUntilReady();

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      const grace = setTimeout(() => {
        for (const id of active) {
          reasons.set(id, 'shutdown');
          worker.cancelJob(id, 'shutdown');
        }
      }, o.shutdownGraceMs);
      try {
        await worker.close();
      } finally {
        clearTimeout(grace);
      }
      subscriber.disconnect();
      await store.close();
      connection.disconnect();
      model.dispose();
      await rm(tmpDir, { recursive: true, force: true });
    })();
    return closing;
  };
  return { worker, name, model, fingerprint, close };
}
