/**
 * The bounded job queue in front of the device's own queue. Jobs run one at a time (the CPU
 * device runs one job at a time anyway, and a job still in this queue can leave at once); a full
 * queue answers 429 with Retry-After, and with tokens each client may have only so many jobs.
 * Every job runs with an AbortSignal: DELETE, its timeout and shutdown abort it through the
 * library (a running job stops at its next step). Listeners get every event of a job for SSE.
 */
import { EventEmitter } from 'node:events';
import type { JobOptions, JobProgress } from '../jobs.js';
import { HttpError, toHttp } from './errors.js';
import { newId } from './ids.js';
import { progressRecord, type JobLog, type JobProgressRecord, type JobRecord, type JobState } from './jobLog.js';

/** An event of a job, as SSE sends it (`event: <type>`, `data: <JSON>`). */
export type JobEvent =
  | { type: 'queued'; job: JobRecord; position: number }
  | { type: 'position'; position: number }
  | { type: 'running'; job: JobRecord }
  | { type: 'progress'; progress: JobProgressRecord }
  | { type: 'done'; job: JobRecord }
  | { type: 'failed'; job: JobRecord }
  | { type: 'cancelled'; job: JobRecord };

/** What a job's work gets: the signal to pass on and the progress callback. */
export type JobContext = Required<Pick<JobOptions, 'signal' | 'onProgress'>>;

export type JobWork = (context: JobContext) => Promise<Record<string, unknown>>;

interface Pending {
  record: JobRecord;
  work: JobWork;
  controller: AbortController;
  /** Why it was aborted: a cancel, its timeout, or shutdown. */
  reason?: 'cancel' | 'timeout' | 'shutdown';
}

export interface QueueOptions {
  /** Jobs that may wait (besides the running one). */
  maxQueue: number;
  /** Milliseconds before a running job is aborted. */
  timeoutMs: number;
  /** Jobs one client may have queued or running; applies to jobs with a client. */
  perClient: number;
  /** Finished records kept in memory (and in the log). */
  keep: number;
  log: JobLog;
  /** Called when a job ends (for metrics). */
  onFinished?: (record: JobRecord, seconds: number) => void;
}

const TERMINAL: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

export function isTerminal(state: JobState): boolean {
  return TERMINAL.includes(state);
}

export class JobQueue {
  private readonly options: QueueOptions;
  private readonly records = new Map<string, JobRecord>();
  private readonly waiting: Pending[] = [];
  private readonly running = new Map<string, Pending>();
  private readonly events = new EventEmitter();
  private accepting = true;
  private idle: Promise<void> = Promise.resolve();
  private meanSeconds = 5;

  constructor(options: QueueOptions, restored: JobRecord[] = []) {
    this.options = options;
    for (const record of restored) this.records.set(record.id, record);
    this.events.setMaxListeners(0);
  }

  /** Queues `work`; throws 429 (queue full, or the client's cap) or 503 (shutting down). */
  submit(kind: string, model: string, work: JobWork, client?: string): JobRecord {
    if (!this.accepting) throw new HttpError(503, 'ERR_SHUTTING_DOWN', 'The server is shutting down and takes no new jobs');
    if (this.waiting.length >= this.options.maxQueue) {
      const retry = Math.max(1, Math.ceil(this.meanSeconds * (this.waiting.length + 1)));
      throw new HttpError(429, 'ERR_QUEUE_FULL', `The job queue is full (${this.options.maxQueue} waiting); retry later`, {
        'retry-after': String(retry),
      });
    }
    if (client !== undefined) {
      const mine = [...this.waiting, ...this.running.values()].filter((p) => p.record.client === client).length;
      if (mine >= this.options.perClient) {
        throw new HttpError(429, 'ERR_TOO_MANY_JOBS', `This token already has ${mine} jobs queued or running (the limit)`, {
          'retry-after': String(Math.max(1, Math.ceil(this.meanSeconds))),
        });
      }
    }
    const record: JobRecord = { id: newId(), kind, state: 'queued', model, createdAt: new Date().toISOString() };
    if (client !== undefined) record.client = client;
    const pending: Pending = { record, work, controller: new AbortController() };
    this.records.set(record.id, record);
    this.waiting.push(pending);
    this.options.log.write(record);
    this.emit(record.id, { type: 'queued', job: record, position: this.waiting.length });
    this.pump();
    return record;
  }

  get(id: string): JobRecord | undefined {
    return this.records.get(id);
  }

  /** Newest first; `state` and `client` filter. */
  list(options: { state?: JobState; limit?: number; client?: string } = {}): JobRecord[] {
    const all = [...this.records.values()].filter(
      (r) => (options.state === undefined || r.state === options.state) && (options.client === undefined || r.client === options.client),
    );
    return all.reverse().slice(0, options.limit ?? 100);
  }

  /** 1-based place among the waiting jobs; 0 when not waiting. */
  position(id: string): number {
    return this.waiting.findIndex((p) => p.record.id === id) + 1;
  }

  /** Jobs waiting, jobs running, and records by state (for metrics and /healthz). */
  stats(): { waiting: number; running: number; byState: Record<JobState, number> } {
    const byState: Record<JobState, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const r of this.records.values()) byState[r.state]++;
    return { waiting: this.waiting.length, running: this.running.size, byState };
  }

  /** Listens to a job's events; returns the function that stops listening. */
  subscribe(id: string, listener: (event: JobEvent) => void): () => void {
    this.events.on(id, listener);
    return () => this.events.off(id, listener);
  }

  /**
   * Cancels a job: a queued one leaves the queue now, a running one is aborted (it stops at its
   * next step and then reads cancelled). A finished one is left as it is.
   */
  cancel(id: string): JobRecord | undefined {
    const record = this.records.get(id);
    if (!record) return undefined;
    const index = this.waiting.findIndex((p) => p.record.id === id);
    if (index >= 0) {
      const [pending] = this.waiting.splice(index, 1);
      this.finish(pending, 'cancelled', undefined, { code: 'ERR_ABORTED', message: 'Cancelled while queued' }, 0);
      this.announcePositions(index);
    } else {
      const running = this.running.get(id);
      if (running && !running.reason) {
        running.reason = 'cancel';
        running.controller.abort(new Error('cancelled'));
      }
    }
    return record;
  }

  /**
   * Stops taking jobs; lets the running ones finish within `graceMs`, then aborts them; queued
   * ones are cancelled at once. Resolves when nothing runs.
   */
  async drain(graceMs: number): Promise<void> {
    this.accepting = false;
    for (const pending of this.waiting.splice(0)) {
      this.finish(
        pending,
        'cancelled',
        undefined,
        { code: 'ERR_SHUTTING_DOWN', message: 'The server shut down before the job started' },
        0,
      );
    }
    if (this.running.size === 0) return;
    const timer = setTimeout(() => {
      for (const pending of this.running.values()) {
        pending.reason ??= 'shutdown';
        pending.controller.abort(new Error('shutdown'));
      }
    }, graceMs);
    await this.idle;
    clearTimeout(timer);
  }

  private emit(id: string, event: JobEvent): void {
    this.events.emit(id, event);
  }

  private announcePositions(from: number): void {
    for (let i = from; i < this.waiting.length; i++) this.emit(this.waiting[i].record.id, { type: 'position', position: i + 1 });
  }

  private pump(): void {
    if (this.running.size > 0 || this.waiting.length === 0) return;
    const pending = this.waiting.shift()!;
    this.announcePositions(0);
    this.idle = this.run(pending);
  }

  private async run(pending: Pending): Promise<void> {
    const { record, controller } = pending;
    this.running.set(record.id, pending);
    record.state = 'running';
    record.startedAt = new Date().toISOString();
    this.options.log.write(record);
    this.emit(record.id, { type: 'running', job: record });
    const start = performance.now();
    const timer = setTimeout(() => {
      pending.reason ??= 'timeout';
      controller.abort(new Error('timeout'));
    }, this.options.timeoutMs);
    const onProgress = (p: JobProgress) => {
      record.progress = progressRecord(p);
      this.emit(record.id, { type: 'progress', progress: record.progress });
    };
    try {
      const result = await pending.work({ signal: controller.signal, onProgress });
      if (pending.reason) throw new Error('aborted after the work ended');
      this.finish(pending, 'succeeded', result, undefined, (performance.now() - start) / 1000);
    } catch (error) {
      const seconds = (performance.now() - start) / 1000;
      if (pending.reason === 'cancel')
        this.finish(pending, 'cancelled', undefined, { code: 'ERR_ABORTED', message: 'Cancelled while running' }, seconds);
      else if (pending.reason === 'timeout')
        this.finish(
          pending,
          'failed',
          undefined,
          { code: 'ERR_TIMEOUT', message: `The job ran longer than ${this.options.timeoutMs} ms and was aborted` },
          seconds,
        );
      else if (pending.reason === 'shutdown')
        this.finish(
          pending,
          'failed',
          undefined,
          { code: 'ERR_SHUTTING_DOWN', message: 'The server shut down while the job ran' },
          seconds,
        );
      else this.finish(pending, 'failed', undefined, toHttp(error).body.error, seconds);
    } finally {
      clearTimeout(timer);
      this.running.delete(record.id);
      this.pump();
    }
  }

  private finish(
    pending: Pending,
    state: JobState,
    result: Record<string, unknown> | undefined,
    error: { code: string; message: string } | undefined,
    seconds: number,
  ): void {
    const { record } = pending;
    record.state = state;
    record.finishedAt = new Date().toISOString();
    if (result) record.result = result;
    if (error) record.error = { code: error.code, message: error.message };
    if (state === 'succeeded') this.meanSeconds = 0.8 * this.meanSeconds + 0.2 * seconds;
    this.options.log.write(record);
    const type = state === 'succeeded' ? 'done' : state === 'failed' ? 'failed' : 'cancelled';
    this.emit(record.id, { type, job: record } as JobEvent);
    this.options.onFinished?.(record, seconds);
    this.forgetOld();
  }

  private forgetOld(): void {
    if (this.records.size <= this.options.keep) return;
    for (const [id, record] of this.records) {
      if (this.records.size <= this.options.keep) break;
      if (isTerminal(record.state)) this.records.delete(id);
    }
  }
}
