/**
 * Imagic: `POST /v1/imagic` (the training, a job whose result is an Imagic id with its losses),
 * `GET /v1/imagic/:id`, and `POST /v1/imagic/:id/generate` (one image per η).
 */
import type { FastifyInstance } from 'fastify';
import { TorchEditError } from '../../errors.js';
import { validateImagicOptions, validateImagicSweepOptions } from '../../options/resolve.js';
import type { ImagicOptions } from '../../pipelines/imagic/train.js';
import { clientOf, type ServerContext } from '../context.js';
import { publicJob } from '../jobLog.js';
import { notFound } from '../errors.js';
import { checkAtMost, checkSteps } from '../limits.js';
import { bodySchema, idParams, idSchema, seedFromJson } from '../schemas.js';
import { storedMeta, storedMetaRoute, uploadedImageForJob } from './stored.js';

const trainBody = bodySchema('imagic', { image: idSchema, targetPrompt: { type: 'string', minLength: 1 }, model: { type: 'string' } }, [
  'image',
  'targetPrompt',
]);
const generateBody = bodySchema('imagicGenerate', {
  etas: { type: 'array', items: { type: 'number' }, description: 'several η: one image each (instead of eta)' },
});

/** At most `n` points of a loss curve (means of equal runs), for the page's chart. */
function thin(values: number[], n = 400): number[] {
  if (values.length <= n) return values;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const from = Math.floor((i * values.length) / n);
    const to = Math.floor(((i + 1) * values.length) / n);
    let sum = 0;
    for (let j = from; j < to; j++) sum += values[j];
    out.push(sum / (to - from));
  }
  return out;
}

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
      if (!ctx.storage.has('image', image)) throw notFound('image', String(image));
      const imageId = image;
      const job = ctx.queue.submit(
        'imagic',
        served.name,
        async ({ signal, onProgress }) => {
          const bytes = await uploadedImageForJob(ctx, imageId);
          const result = await served.model.imagic(bytes, targetPrompt, { ...options, seed: resolved.seed, signal, onProgress });
          const losses = { embedding: thin(result.losses.embedding), finetune: thin(result.losses.finetune) };
          try {
            const stored = await ctx.storage.putImagic(result, served.name, { settings: result.settings, image: imageId, losses });
            return { imagicId: stored.id, settings: result.settings, losses };
          } catch (error) {
            result.dispose();
            throw error;
          }
        },
        clientOf(request),
      );
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
      const meta = storedMeta(ctx, 'imagic', 'Imagic result', request.params.id);
      const served = ctx.models.get(meta.model);
      const { eta, etas, ...rest } = request.body ?? {};
      if (eta !== undefined && etas !== undefined)
        throw new TorchEditError('ERR_INVALID_OPTION', 'Expected eta or etas, not both', { option: 'etas' });
      const list = etas ?? [eta ?? served.model.defaults.imagicGenerate.eta];
      const options = { ...rest, seed: seedFromJson(rest.seed), etas: list } as Parameters<typeof validateImagicSweepOptions>[0];
      const resolved = validateImagicSweepOptions(options, served.context());
      checkSteps(resolved.steps, ctx.options.limits);
      checkAtMost('etas', resolved.etas.length, ctx.options.limits.images, 'an array of length');
      const imagicId = meta.id;
      const job = ctx.queue.submit(
        'imagicGenerate',
        served.name,
        async ({ signal, onProgress }) => {
          const imagic = await ctx.storage.acquireImagic(imagicId, served.model);
          try {
            const results = await imagic.value.sweep({ ...resolved, signal, onProgress });
            try {
              const out = [];
              for (const [i, r] of results.entries()) {
                const stored = await ctx.storage.putBytes('result', await r.image.toBuffer('png'), {
                  format: 'png',
                  width: r.image.width,
                  height: r.image.height,
                  info: { imagic: imagicId, eta: resolved.etas[i], seed: r.seed.toString() },
                });
                out.push({ id: stored.id, url: `${ctx.prefix}/v1/results/${stored.id}.png`, eta: resolved.etas[i] });
              }
              return { results: out, seed: resolved.seed.toString() };
            } finally {
              for (const r of results) r.dispose();
            }
          } finally {
            imagic.release();
          }
        },
        clientOf(request),
      );
      reply.code(202);
      return { job: publicJob(job) };
    },
  );
}
