/**
 * The server's side of scale-out: jobs go to a BullMQ queue on Redis instead of running in
 * process, and are read back from it (any server instance sees every job). Events come from
 * BullMQ's QueueEvents (a Redis stream), so SSE works on whichever instance the client asks.
 * While Redis is unreachable every call answers 503 ERR_QUEUE_UNAVAILABLE at once (the
 * connection fails fast rather than queueing commands) and ioredis keeps reconnecting.
 */
import { EventEmitter } from 'node:events';
import { Job, type JobType, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { HttpError } from '../errors.js';
import { newId } from '../ids.js';
import type { JobBackend, QueueStats } from '../jobBackend.js';
import type { JobRecord, JobState } from '../jobLog.js';
import type { JobSpec } from '../jobSpec.js';
import type { JobEvent } from '../queue.js';
import { requestCancel } from './cancelChannel.js';
import { failFastOptions, isConnectionError, redisConnection } from './connection.js';
import type { ResolvedScaleOptions } from './options.js';
import { type QueuedJobData, recordOf } from './queuedJob.js';

export interface RedisJobQueueOptions {
  scale: ResolvedScaleOptions;
  /** Jobs that may wait; more is 429. */
  maxQueue: number;
  /** Finished jobs kept in Redis (each of completed and failed). */
  keep: number;
  /** Redis errors, for the log (they are also answered as 503). */
  onError: (error: Error) => void;
}

const QUEUED_TYPES: JobType[] = ['waiting', 'prioritized', 'delayed'];
const TYPES_OF: Record<JobState, JobType[]> = {
  queued: QUEUED_TYPES,
  running: ['active'],
  succeeded: ['completed'],
  failed: ['failed'],
  cancelled: ['failed'],
};

const unavailable = () =>
  new HttpError(503, 'ERR_QUEUE_UNAVAILABLE', 'The job queue (Redis) is unreachable; retry shortly', { 'retry-after': '5' });

export class RedisJobQueue implements JobBackend {
  /** Commands behind requests (fail fast); also the artifact store's when it is Redis. */
  readonly connection: Redis;
  private readonly eventsConnection: Redis;
  readonly queue: Queue<QueuedJobData>;
  private readonly queueEvents: QueueEvents;
  private readonly events = new EventEmitter();
  private readonly name: string;

  constructor(private readonly options: RedisJobQueueOptions) {
    const { scale } = options;
    this.name = scale.queue;
    this.connection = redisConnection(scale.redis, 'failFast', options.onError);
    this.eventsConnection = redisConnection(scale.redis, 'blocking', options.onError);
    // The queue's own connection: BullMQ sends commands while it connects, so it keeps an offline
    // queue; `guard` answers 503 before a call can wait in it.
    this.queue = new Queue<QueuedJobData>(scale.queue, {
      connection: { url: scale.redis, ...failFastOptions, enableOfflineQueue: true },
      skipWaitingForReady: true,
      defaultJobOptions: {
        attempts: scale.attempts,
        backoff: { type: 'exponential', delay: scale.backoffMs },
        removeOnComplete: { count: options.keep },
        removeOnFail: { count: options.keep },
      },
    });
    this.queue.on('error', options.onError);
    this.queueEvents = new QueueEvents(scale.queue, { connection: this.eventsConnection });
    this.queueEvents.on('error', options.onError);
    this.events.setMaxListeners(0);
    this.queueEvents.on('waiting', ({ jobId }) => this.relay(jobId, 'queued'));
    this.queueEvents.on('active', ({ jobId }) => this.relay(jobId, 'running'));
    this.queueEvents.on('completed', ({ jobId }) => this.relay(jobId, 'done'));
    this.queueEvents.on('failed', ({ jobId }) => this.relay(jobId, 'failed'));
    this.queueEvents.on('removed', ({ jobId }) => this.relay(jobId, 'removed'));
    this.queueEvents.on('progress', ({ jobId, data }) => {
      if (this.events.listenerCount(jobId) > 0 && typeof data === 'object')
        this.events.emit(jobId, { type: 'progress', progress: data } as JobEvent);
    });
  }

  /** Waits (at most `ms`) until the queue's connection is up; a server starts anyway without Redis (503 until it comes). */
  async open(ms = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const connected = new Promise<void>((resolve) => {
      if (this.connection.status === 'ready') resolve();
      else this.connection.once('ready', () => resolve());
    });
    await Promise.race([
      Promise.all([this.queue.waitUntilReady().catch(() => {}), connected]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
    clearTimeout(timer);
  }

  /** `ready` when Redis answers; `reconnecting` (or `connecting`) while it does not. */
  get status(): string {
    return this.connection.status;
  }

  /** Runs a Redis call; a lost connection becomes 503, and so does a call that takes over 5 s (never a hang). */
  private async guard<T>(call: () => Promise<T>): Promise<T> {
    if (this.connection.status !== 'ready') throw unavailable();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        call(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(unavailable()), 5000);
        }),
      ]);
    } catch (error) {
      if (error instanceof HttpError) throw error;
      if (isConnectionError(error) || this.connection.status !== 'ready') throw unavailable();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads a job's record and tells its listeners (only when it has any: a read per event otherwise). */
  private relay(id: string, what: 'queued' | 'running' | 'done' | 'failed' | 'removed'): void {
    if (this.events.listenerCount(id) === 0) return;
    this.get(id).then(
      (record) => {
        if (!record) return;
        const event: JobEvent =
          record.state === 'queued'
            ? { type: 'queued', job: record, position: 0 }
            : record.state === 'running'
              ? { type: 'running', job: record }
              : record.state === 'succeeded'
                ? { type: 'done', job: record }
                : record.state === 'cancelled'
                  ? { type: 'cancelled', job: record }
                  : { type: 'failed', job: record };
        if (what === 'removed' && record.state !== 'cancelled') return;
        this.events.emit(id, event);
      },
      (error) => this.options.onError(error as Error),
    );
  }

  private tombstone(id: string): string {
    return `${this.name}:tomb:${id}`;
  }

  /** Queues a job; 429 when `maxQueue` jobs wait, 503 while Redis is away. */
  async submit(spec: JobSpec, model: { name: string; fingerprint: string }, prefix: string, client?: string): Promise<JobRecord> {
    return this.guard(async () => {
      const waiting = await this.queue.count();
      if (waiting >= this.options.maxQueue)
        throw new HttpError(429, 'ERR_QUEUE_FULL', `The job queue is full (${this.options.maxQueue} waiting); retry later`, {
          'retry-after': '5',
        });
      const data: QueuedJobData = { spec, model: model.name, fingerprint: model.fingerprint, prefix };
      if (client !== undefined) data.client = client;
      const job = await this.queue.add(spec.kind, data, { jobId: newId() });
      return recordOf(job as Job<QueuedJobData>, 'waiting')!;
    });
  }

  async get(id: string): Promise<JobRecord | undefined> {
    return this.guard(async () => {
      // The state first, then the job: a job that ends between the two reads then shows its
      // end state with its result or error (the other order could read 'failed' without a reason).
      const state = await this.queue.getJobState(id);
      const job = (await Job.fromId(this.queue, id)) as Job<QueuedJobData> | undefined;
      if (job) {
        const record = recordOf(job, state);
        if (record) return record;
      }
      const tomb = await this.connection.get(this.tombstone(id));
      return tomb === null ? undefined : (JSON.parse(tomb) as JobRecord);
    });
  }

  async list(options: { state?: JobState; limit?: number; client?: string } = {}): Promise<JobRecord[]> {
    return this.guard(async () => {
      const limit = options.limit ?? 100;
      const types: JobType[] = options.state ? TYPES_OF[options.state] : [...QUEUED_TYPES, 'active', 'completed', 'failed'];
      const records: JobRecord[] = [];
      for (const type of types) {
        for (const job of await this.queue.getJobs([type], 0, limit - 1)) {
          const record = recordOf(job as Job<QueuedJobData>, type as Parameters<typeof recordOf>[1]);
          if (record) records.push(record);
        }
      }
      return records
        .filter(
          (r) =>
            (options.state === undefined || r.state === options.state) && (options.client === undefined || r.client === options.client),
        )
        .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
        .slice(0, limit);
    });
  }

  async position(id: string): Promise<number> {
    return this.guard(async () => {
      // BullMQ's wait list is newest first; a job's place is counted from the other end.
      const waiting = await this.queue.getWaiting(0, this.options.maxQueue);
      const index = waiting.findIndex((job) => job.id === id);
      return index < 0 ? 0 : waiting.length - index;
    });
  }

  async stats(): Promise<QueueStats> {
    return this.guard(async () => {
      const c = await this.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
      const waiting = (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0);
      return {
        waiting,
        running: c.active ?? 0,
        byState: { queued: waiting, running: c.active ?? 0, succeeded: c.completed ?? 0, failed: c.failed ?? 0, cancelled: 0 },
      };
    });
  }

  subscribe(id: string, listener: (event: JobEvent) => void): () => void {
    this.events.on(id, listener);
    return () => this.events.off(id, listener);
  }

  /**
   * A queued job is removed (and remembered as cancelled); a running one is asked to stop on the
   * cancel channel (whichever worker runs it aborts it and fails it, without retry, as cancelled).
   */
  async cancel(id: string): Promise<JobRecord | undefined> {
    const record = await this.get(id);
    if (record?.state !== 'queued') {
      if (record?.state === 'running') await this.guard(() => requestCancel(this.connection, this.name, id));
      return record;
    }
    return this.guard(async () => {
      const cancelled: JobRecord = {
        ...record,
        state: 'cancelled',
        finishedAt: new Date().toISOString(),
        error: { code: 'ERR_ABORTED', message: 'Cancelled while queued' },
      };
      await this.connection.set(this.tombstone(id), JSON.stringify(cancelled), 'EX', 7 * 24 * 3600);
      try {
        const job = await Job.fromId(this.queue, id);
        await job?.remove();
        return cancelled;
      } catch (error) {
        if (isConnectionError(error)) throw error;
        // A worker took it meanwhile (it is locked): stop it where it runs.
        await this.connection.del(this.tombstone(id));
        await requestCancel(this.connection, this.name, id);
        return (await this.get(id)) ?? record;
      }
    });
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.queueEvents.close(), this.queue.close()]);
    this.connection.disconnect();
    this.eventsConnection.disconnect();
  }
}
