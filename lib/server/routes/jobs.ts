/** `GET /v1/jobs`, `GET /v1/jobs/:id`, its events (SSE) and `DELETE /v1/jobs/:id` (cancel). */
import type { FastifyInstance } from 'fastify';
import { invalidOption } from '../../errors.js';
import type { ServerContext } from '../context.js';
import { notFound } from '../errors.js';
import type { JobState } from '../jobLog.js';
import { isTerminal } from '../queue.js';
import { idParams } from '../schemas.js';
import { streamJobEvents } from '../sse.js';

const STATES: JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

export function jobRoutes(app: FastifyInstance, ctx: ServerContext): void {
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
      const jobs = ctx.queue
        .list({ state: state as JobState | undefined, limit: n })
        .map((job) => ({ ...job, position: ctx.queue.position(job.id) || undefined }));
      return { jobs, queue: ctx.queue.stats() };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/jobs/:id',
    { schema: { summary: 'A job: state, progress, result (ids and URLs) or error (code and message)', tags: ['jobs'], params: idParams } },
    async (request) => {
      const job = ctx.queue.get(request.params.id);
      if (!job) throw notFound('job', request.params.id);
      return { job: { ...job, position: ctx.queue.position(job.id) || undefined } };
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
      const job = ctx.queue.get(request.params.id);
      if (!job) throw notFound('job', request.params.id);
      streamJobEvents(request, reply, job, ctx.queue);
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
      const job = ctx.queue.cancel(request.params.id);
      if (!job) throw notFound('job', request.params.id);
      reply.code(isTerminal(job.state) ? 200 : 202);
      return { job };
    },
  );
}
