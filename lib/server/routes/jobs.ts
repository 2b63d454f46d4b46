/**
 * `GET /v1/jobs`, `GET /v1/jobs/:id`, its events (SSE) and `DELETE /v1/jobs/:id` (cancel). With
 * tokens, a client sees and cancels only the jobs its own token submitted (another's is 404).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { invalidOption } from '../../errors.js';
import { clientOf, type ServerContext } from '../context.js';
import { notFound } from '../errors.js';
import { type JobRecord, type JobState, publicJob } from '../jobLog.js';
import { isTerminal } from '../queue.js';
import { idParams } from '../schemas.js';
import { streamJobEvents } from '../sse.js';

const STATES: JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

export function jobRoutes(app: FastifyInstance, ctx: ServerContext): void {
  /** The job `id` if this request may see it. */
  const find = async (request: FastifyRequest, id: string): Promise<JobRecord> => {
    const job = await ctx.jobs.get(id);
    if (!job || (ctx.auth.enabled && job.client !== clientOf(request))) throw notFound('job', id);
    return job;
  };
  /** A record as the API shows it: with its queue position, without the client's hash. */
  const view = async (job: JobRecord) => {
    return { ...publicJob(job), position: (job.state === 'queued' ? await ctx.jobs.position(job.id) : 0) || undefined };
  };

  app.get<{ Querystring: { state?: string; limit?: string } }>(
    '/v1/jobs',
    {
      schema: {
        summary: 'Jobs, newest first, with the queue position of waiting ones',
        tags: ['jobs'],
        querystring: {
          type: 'object',
          properties: { state: { type: 'string', enum: STATES }, limit: { type: 'integer', minimum: 1, maximum: 1000 } },
        },
      },
    },
    async (request) => {
      const { state, limit } = request.query;
      if (state !== undefined && !STATES.includes(state as JobState))
        throw invalidOption('state', `one of: ${STATES.join(', ')}`, state, 'state');
      const n = limit === undefined ? 100 : Number(limit);
      if (!Number.isInteger(n) || n < 1 || n > 1000) throw invalidOption('limit', 'integer 1–1000', limit, 'limit');
      const mine = ctx.auth.enabled ? clientOf(request) : undefined;
      const list = await ctx.jobs.list({ state: state as JobState | undefined, limit: n, client: mine });
      const jobs = await Promise.all(list.map(view));
      return { jobs, queue: await ctx.jobs.stats() };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/jobs/:id',
    { schema: { summary: 'A job: state, progress, result (ids and URLs) or error (code and message)', tags: ['jobs'], params: idParams } },
    async (request) => {
      return { job: await view(await find(request, request.params.id)) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/jobs/:id/events',
    {
      schema: {
        summary: 'Server-sent events of a job: queued, position, running, progress (step, total, etaMs), then done, failed or cancelled',
        tags: ['jobs'],
        params: idParams,
        'x-produces': 'text/event-stream',
      },
    },
    async (request, reply) => {
      const job = await find(request, request.params.id);
      streamJobEvents(request, reply, job, ctx.jobs, job.state === 'queued' ? await ctx.jobs.position(job.id) : 0);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/jobs/:id',
    {
      schema: {
        summary:
          'Cancel a job: a queued one leaves at once (200), a running one stops at its next step (202); a finished one is left as it is (200)',
        tags: ['jobs'],
        params: idParams,
      },
    },
    async (request, reply) => {
      await find(request, request.params.id);
      const job = (await ctx.jobs.cancel(request.params.id))!;
      reply.code(isTerminal(job.state) ? 200 : 202);
      return { job: await view(job) };
    },
  );
}
