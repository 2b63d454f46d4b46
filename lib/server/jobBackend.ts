/**
 * What the job routes and SSE read jobs from: the server's own queue (queue.ts) or, with workers,
 * BullMQ on Redis (scale/redisQueue.ts). The same records, states and events either way; the
 * Redis one answers asynchronously (and 503 while Redis is unreachable).
 */
import type { JobRecord, JobState } from './jobLog.js';
import type { JobEvent } from './queue.js';

type Maybe<T> = T | Promise<T>;

export interface QueueStats {
  waiting: number;
  running: number;
  byState: Record<JobState, number>;
}

export interface JobBackend {
  get(id: string): Maybe<JobRecord | undefined>;
  /** Newest first; `state` and `client` filter. */
  list(options: { state?: JobState; limit?: number; client?: string }): Maybe<JobRecord[]>;
  /** 1-based place among the waiting jobs; 0 when not waiting. */
  position(id: string): Maybe<number>;
  stats(): Maybe<QueueStats>;
  /** Listens to a job's events; returns the function that stops listening. */
  subscribe(id: string, listener: (event: JobEvent) => void): () => void;
  /** A queued job leaves at once, a running one stops at its next step; resolves to the record. */
  cancel(id: string): Maybe<JobRecord | undefined>;
}
