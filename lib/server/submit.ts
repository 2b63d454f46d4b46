/**
 * Submits a job described by a JobSpec: to the server's own queue (run here, on its Storage), or
 * with workers to the Redis queue (run by whichever worker takes it). Routes call only this.
 */
import type { FastifyRequest } from 'fastify';
import { clientOf, type ServerContext } from './context.js';
import type { JobRecord } from './jobLog.js';
import { type JobSpec, runJob } from './jobSpec.js';
import type { ServedModel } from './models.js';
import { storageEnv } from './storageEnv.js';

export async function submitJob(ctx: ServerContext, request: FastifyRequest, served: ServedModel, spec: JobSpec): Promise<JobRecord> {
  const client = clientOf(request);
  if (ctx.remote) {
    const fingerprint = await served.model.fingerprint();
    return ctx.remote.queue.submit(spec, { name: served.name, fingerprint }, ctx.prefix, client);
  }
  const env = storageEnv(ctx.storage, served, ctx.prefix);
  return ctx.queue.submit(spec.kind, served.name, (job) => runJob(spec, env, job), client);
}
