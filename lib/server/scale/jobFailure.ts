/**
 * How a job's failure crosses Redis: BullMQ keeps only an error's message (`failedReason`), so a
 * worker throws errors whose message is the JSON `{ code, message }` the API shows, and a server
 * decodes it. Errors with a code (bad input, a model mismatch, a cancel, a timeout) are final
 * (BullMQ's UnrecoverableError: no retry); anything else (a crash of the work, a lost connection)
 * is retried within the job's attempts.
 */
import { UnrecoverableError } from 'bullmq';
import { TorchEditError } from '../../errors.js';
import { HttpError, toHttp } from '../errors.js';

export interface FailureBody {
  code: string;
  message: string;
}

/** Codes worth another attempt: the work itself broke, not its input. */
const RETRIED = new Set(['ERR_INTERNAL', 'ERR_OUT_OF_MEMORY']);

/** The error a worker throws for `error`. */
export function encodeFailure(error: unknown): Error {
  const coded = error instanceof TorchEditError || error instanceof HttpError;
  const body = coded ? toHttp(error).body.error : { code: 'ERR_INTERNAL', message: (error as Error)?.message ?? String(error) };
  const text = JSON.stringify({ code: body.code, message: body.message });
  return coded && !RETRIED.has(body.code) ? new UnrecoverableError(text) : new Error(text);
}

export function finalFailure(code: string, message: string): Error {
  return new UnrecoverableError(JSON.stringify({ code, message }));
}

/** The `{ code, message }` of a failed job's `failedReason` (BullMQ's own reasons, e.g. a stalled job, become ERR_JOB_LOST). */
export function decodeFailure(reason: string | undefined): FailureBody {
  try {
    const body = JSON.parse(reason ?? '') as FailureBody;
    if (typeof body.code === 'string' && typeof body.message === 'string') return body;
  } catch {
    // not ours
  }
  return { code: 'ERR_JOB_LOST', message: reason || 'The job failed without a reason' };
}
