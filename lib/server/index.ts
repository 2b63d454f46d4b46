/**
 * `torchedit/server`: the HTTP service. `createServer(options)` returns a fastify app; an existing
 * fastify app registers `torcheditRoutes` (with a prefix) instead. See README "Service".
 */
export { createServer, torcheditRoutes, type CreateServerOptions } from './app.js';
export {
  defaultLimits,
  resolveServerOptions,
  type ResolvedLimits,
  type ResolvedServerOptions,
  type ServerLimits,
  type ServerOptions,
} from './options.js';
export type { JobRecord, JobState, JobProgressRecord } from './jobLog.js';
export type { JobEvent } from './queue.js';
export type { ErrorBody, ServiceErrorCode } from './errors.js';
export { createWorker, type TorchEditWorker } from './scale/worker.js';
export type { ArtifactStoreOptions, ResolvedScaleOptions, ScaleOptions, WorkerOptions } from './scale/options.js';
export type { QueuedJobData } from './scale/queuedJob.js';
export type { JobSpec, JsonOptions } from './jobSpec.js';
