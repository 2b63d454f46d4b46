/** `GET /healthz`, `GET /metrics`, `GET /v1/models`. */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';

const started = Date.now();

export function systemRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    '/healthz',
    { config: { public: true }, schema: { summary: 'Liveness: always cheap, never waits for a job', tags: ['system'] } },
    async () => {
      const uptimeSeconds = Math.round((Date.now() - started) / 1000);
      if (ctx.remote) {
        // With workers: the server is alive without Redis (it answers 503 to jobs meanwhile).
        const redis = ctx.remote.queue.status;
        if (redis !== 'ready') return { status: 'degraded', uptimeSeconds, redis };
        const { waiting, running } = await ctx.jobs.stats();
        return { status: 'ok', uptimeSeconds, redis, queue: { waiting, running } };
      }
      const { waiting, running } = ctx.queue.stats();
      return { status: 'ok', uptimeSeconds, queue: { waiting, running } };
    },
  );

  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics (text format 0.0.4)', tags: ['system'], 'x-produces': 'text/plain' } },
    async (_request, reply) => {
      reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8');
      return ctx.metrics.render(ctx.queue, ctx.storage);
    },
  );

  app.get(
    '/v1/models',
    { schema: { summary: 'The models served (the first is the default), with their defaults and limits', tags: ['system'] } },
    async () => ({
      models: ctx.models.list().map(({ name, model }) => ({
        name,
        default: name === ctx.models.defaultModel,
        bundle: model.config.name,
        imageSize: model.config.sampleSize * model.config.vaeScaleFactor,
        sizeMultiple: model.sizeMultiple,
        device: model.device,
        defaults: model.defaults,
      })),
      limits: ctx.options.limits,
    }),
  );
}
