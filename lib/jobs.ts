/**
 * AbortSignal and onProgress plumbing shared by every long call (docs/architecture.md "Execution
 * model"): a job that is aborted while queued rejects at once, a running one at its next step.
 */
import type { NativeJob, NativeProgress, NativeProgressCallback } from './binding.js';
import { TorchEditError, fromNative } from './errors.js';
import { optionalFunction, optionalSignal, optionsObject } from './options/validate.js';

/** Progress of a long job, throttled by the native side (at most every 50 ms, plus the last step). */
export interface JobProgress {
  /** What the job is doing, e.g. `'denoise'`, `'invert'`, `'embedding'`, `'finetune'`. */
  phase: string;
  /** Steps of this phase done so far (1-based). */
  step: number;
  /** Steps in this phase. */
  total: number;
  /** The phase's number of interest: the timestep while sampling, the loss while training. */
  value?: number;
  /** Milliseconds since this phase's first progress report. */
  elapsedMs: number;
  /** Estimated milliseconds left in this phase, from the mean step time so far. */
  etaMs: number;
}

/** Options every long call takes. */
export interface JobOptions {
  /** Cancels the job: queued jobs reject at once, running ones at their next step, with `ERR_ABORTED`. */
  signal?: AbortSignal;
  /** Called on the main thread as the job makes progress. Exceptions it throws are reported as warnings. */
  onProgress?: (progress: JobProgress) => void;
}

function abortError(signal: AbortSignal, caller: Error): TorchEditError {
  const error = new TorchEditError('ERR_ABORTED', 'The operation was aborted', { cause: signal.reason });
  error.stack = `${error.name} [ERR_ABORTED]: ${error.message}\n${caller.stack?.split('\n').slice(1).join('\n') ?? ''}`;
  return error;
}

function progressAdapter(onProgress: JobOptions['onProgress']): NativeProgressCallback | undefined {
  if (!onProgress) return undefined;
  let phase = '';
  let phaseStart = 0;
  return (p: NativeProgress) => {
    const now = performance.now();
    if (p.phase !== phase) {
      phase = p.phase;
      phaseStart = now;
    }
    const elapsedMs = now - phaseStart;
    const etaMs = p.step > 0 ? (elapsedMs / p.step) * Math.max(0, p.total - p.step) : 0;
    try {
      onProgress({ ...p, elapsedMs, etaMs });
    } catch (error) {
      process.emitWarning(`torchedit: an onProgress callback threw: ${(error as Error)?.message ?? error}`);
    }
  };
}

/**
 * Starts a native job and returns its promise, wired to `signal` and `onProgress`.
 * The caller's stack is captured now, before any await, and put on any error.
 */
export async function runJob<T>(
  start: (onProgress: NativeProgressCallback | undefined) => NativeJob<T>,
  options: JobOptions = {},
): Promise<T> {
  const caller = new Error();
  Error.captureStackTrace?.(caller, runJob);
  const checked = optionsObject(options);
  const signal = optionalSignal('signal', checked.signal);
  const onProgress = optionalFunction<NonNullable<JobOptions['onProgress']>>('onProgress', checked.onProgress);
  if (signal?.aborted) throw abortError(signal, caller);
  let job: NativeJob<T>;
  try {
    job = start(progressAdapter(onProgress));
  } catch (error) {
    throw error instanceof TorchEditError ? error : fromNative(error, caller);
  }
  const onAbort = () => job.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await job.promise;
  } catch (error) {
    if (signal?.aborted && (error as { code?: string })?.code === 'ERR_ABORTED') throw abortError(signal, caller);
    throw fromNative(error, caller);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
