/**
 * Imagic: `POST /v1/imagic` (the training, a job whose result is an Imagic id with its losses),
 * `GET /v1/imagic/:id`, and `POST /v1/imagic/:id/generate` (one image per η).
 */
import type { FastifyInstance } from 'fastify';
import { TorchEditError } from '../../errors.js';
import { validateImagicOptions, validateImagicSweepOptions } from '../../options/resolve.js';
import type { ImagicOptions } from '../../pipelines/imagic/train.js';
import type { ServerContext } from '../context.js';
import type { JobSpec } from '../jobSpec.js';
import { submitJob } from '../submit.js';
import { publicJob } from '../jobLog.js';
import { storedMeta, storedMetaRoute } from './stored.js';
import { notFound } from '../errors.js';
import { checkAtMost, checkSteps } from '../limits.js';
import { bodySchema, idParams, idSchema, seedFromJson } from '../schemas.js';

const trainBody = bodySchema('imagic', { image: idSchema, targetPrompt: { type: 'string', minLength: 1 }, model: { type: 'string' } }, [
  'image',
  'targetPrompt',
]);
const generateBody = bodySchema('imagicGenerate', {
  etas: { type: 'array', items: { type: 'number' }, description: 'several η: one image each (instead of eta)' },
});

export function imagicRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Body: Record<string, unknown> }>(
    '/v1/imagic',
    {
      schema: {
        summary: 'Train an Imagic edit of an uploaded image; a job whose result is { imagicId, losses }',
        tags: ['imagic'],
        body: trainBody,
      },
    },
    async (request, reply) => {
      const { image, targetPrompt, model: modelName, ...rest } = request.body;
      const served = ctx.models.get(modelName);
      if (typeof targetPrompt !== 'string' || targetPrompt === '')
        throw new TorchEditError('ERR_INVALID_OPTION', 'Expected a non-empty string for targetPrompt', { option: 'targetPrompt' });
      const options = { ...rest, seed: seedFromJson(rest.seed) } as ImagicOptions;
      const resolved = validateImagicOptions(options, served.context());
      checkAtMost('embedding.steps + finetune.steps', resolved.embedding.steps + resolved.finetune.steps, ctx.options.limits.imagicSteps);
      if (!(await ctx.artifacts.meta('image', image))) throw notFound('image', String(image));
      const spec: JobSpec = { kind: 'imagic', image: image as string, targetPrompt, options: { ...rest, seed: resolved.seed.toString() } };
      const job = await submitJob(ctx, request, served, spec);
      reply.code(202);
      return { job: publicJob(job) };
    },
  );

  storedMetaRoute(app, ctx, {
    url: '/v1/imagic/:id',
    kind: 'imagic',
    what: 'Imagic result',
    summary: 'An Imagic result: settings and losses',
    tags: ['imagic'],
    extra: (meta) => ({ losses: meta.info?.losses }),
  });

  app.post<{ Params: { id: string }; Body: Record<string, unknown> }>(
    '/v1/imagic/:id/generate',
    {
      schema: {
        summary:
          'Sample a trained Imagic edit at η (or several etas, same seed); a job whose result is { results: [{ id, url, eta }], seed }',
        tags: ['imagic'],
        params: idParams,
        body: generateBody,
      },
    },
    async (request, reply) => {
      const meta = await storedMeta(ctx, 'imagic', 'Imagic result', request.params.id);
      const served = ctx.models.get(meta.model);
      const { eta, etas, ...rest } = request.body ?? {};
      if (eta !== undefined && etas !== undefined)
        throw new TorchEditError('ERR_INVALID_OPTION', 'Expected eta or etas, not both', { option: 'etas' });
      const list = etas ?? [eta ?? served.model.defaults.imagicGenerate.eta];
      const options = { ...rest, seed: seedFromJson(rest.seed), etas: list } as Parameters<typeof validateImagicSweepOptions>[0];
      const resolved = validateImagicSweepOptions(options, served.context());
      checkSteps(resolved.steps, ctx.options.limits);
      checkAtMost('etas', resolved.etas.length, ctx.options.limits.images, 'an array of length');
      const spec: JobSpec = { kind: 'imagicGenerate', imagic: meta.id, options: { ...rest, seed: resolved.seed.toString(), etas: list } };
      const job = await submitJob(ctx, request, served, spec);
      reply.code(202);
      return { job: publicJob(job) };
    },
  );
}
