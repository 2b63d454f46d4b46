/**
 * A job as it sits in BullMQ (`job.data`) and how a BullMQ job reads as the API's JobRecord:
 * waiting, delayed or prioritized is `queued`, active is `running`, completed is `succeeded`,
 * failed is `failed` with its code, or `cancelled` when that code is ERR_ABORTED.
 */
import type { Job, JobState as BullState } from 'bullmq';
import type { JobProgressRecord, JobRecord, JobState } from '../jobLog.js';
import type { JobSpec } from '../jobSpec.js';
import { decodeFailure } from './jobFailure.js';

export interface QueuedJobData {
  spec: JobSpec;
  /** The model's name on the server that queued it. */
  model: string;
  /** The fingerprint of that model: a worker with another model refuses the job. */
  fingerprint: string;
  /** The server's mount prefix, for result URLs. */
  prefix: string;
  /** A hash of the bearer token that submitted it. */
  client?: string;
}

export function stateOf(state: BullState | 'unknown', failedReason?: string): JobState | undefined {
  switch (state) {
    case 'waiting':
    case 'delayed':
    case 'prioritized':
    case 'waiting-children':
      return 'queued';
    case 'active':
      return 'running';
    case 'completed':
      return 'succeeded';
    case 'failed':
      return decodeFailure(failedReason).code === 'ERR_ABORTED' ? 'cancelled' : 'failed';
    default:
      return undefined;
  }
}

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);

export function recordOf(job: Job<QueuedJobData>, bullState: BullState | 'unknown'): JobRecord | undefined {
  const state = stateOf(bullState, job.failedReason);
  if (!state || !job.id) return undefined;
  const { spec, model, client } = job.data;
  const record: JobRecord = { id: job.id, kind: spec.kind, state, model, createdAt: iso(job.timestamp)! };
  if (typeof spec.options.seed === 'string') record.seed = spec.options.seed;
  if (state !== 'queued' && job.processedOn) record.startedAt = iso(job.processedOn);
  if (state === 'succeeded' || state === 'failed' || state === 'cancelled') record.finishedAt = iso(job.finishedOn);
  if (state === 'running' && typeof job.progress === 'object' && job.progress !== null)
    record.progress = job.progress as unknown as JobProgressRecord;
  if (state === 'succeeded') record.result = job.returnvalue as Record<string, unknown>;
  if (state === 'failed' || state === 'cancelled') record.error = decodeFailure(job.failedReason);
  if (job.attemptsStarted) record.attempts = job.attemptsStarted;
  if (job.processedBy) record.worker = job.processedBy;
  if (client !== undefined) record.client = client;
  return record;
}
