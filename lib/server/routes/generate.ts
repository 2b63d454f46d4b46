/** `POST /v1/generate`: text-to-image, a job whose result is one image per batch entry. */
import type { FastifyInstance } from 'fastify';
import { validateTextToImageOptions } from '../../options/resolve.js';
import type { TextToImageOptions } from '../../pipelines/textToImage.js';
import { TorchEditError } from '../../errors.js';
import type { ServerContext } from '../context.js';
import type { JobSpec } from '../jobSpec.js';
import { submitJob } from '../submit.js';
import { publicJob } from '../jobLog.js';
import { checkAtMost, checkSteps } from '../limits.js';
import { bodySchema, seedFromJson } from '../schemas.js';

const body = bodySchema('textToImage', { prompt: { type: 'string', description: 'what the image shows' }, model: { type: 'string' } }, [
  'prompt',
]);

export function generateRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Body: Record<string, unknown> }>(
    '/v1/generate',
    { schema: { summary: 'Text-to-image; a job whose result is { results: [{ id, url }], seed }', tags: ['generate'], body } },
    async (request, reply) => {
      const { prompt, model: modelName, ...rest } = request.body;
      if (typeof prompt !== 'string')
        throw new TorchEditError('ERR_INVALID_OPTION', `Expected a string for prompt but received ${typeof prompt}`, { option: 'prompt' });
      const served = ctx.models.get(modelName);
      const options = { ...rest, seed: seedFromJson(rest.seed) } as TextToImageOptions;
      const resolved = validateTextToImageOptions(options, served.context());
      checkSteps(resolved.steps, ctx.options.limits);
      checkAtMost('batchSize', resolved.batchSize, ctx.options.limits.images);
      const spec: JobSpec = { kind: 'generate', prompt, options: { ...rest, seed: resolved.seed.toString() } };
      const job = await submitJob(ctx, request, served, spec);
      reply.code(202);
      return { job: publicJob(job) };
    },
  );
}
