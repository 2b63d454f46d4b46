/**
 * LEDITS: `POST /v1/inversions` (a job that keeps the inversion under an id), `GET
 * /v1/inversions/:id`, its file (`GET /v1/inversions/:id/file`), uploading one back (`PUT
 * /v1/inversions`), and `POST /v1/inversions/:id/edits` (a job whose result is an image).
 */
import type { FastifyInstance } from 'fastify';
import type { InvertOptions } from '../../pipelines/ledits/invert.js';
import type { EditOptions } from '../../pipelines/ledits/edit.js';
import { validateEditOptions, validateInvertOptions } from '../../options/resolve.js';
import { TorchEditError } from '../../errors.js';
import type { ServerContext } from '../context.js';
import type { JobSpec } from '../jobSpec.js';
import { submitJob } from '../submit.js';
import { publicJob } from '../jobLog.js';
import { storedMeta, storedMetaRoute } from './stored.js';
import { HttpError, notFound } from '../errors.js';
import { checkAtMost, checkSteps } from '../limits.js';
import { bodySchema, idParams, idSchema, seedFromJson } from '../schemas.js';
import { createReadStream } from 'node:fs';

const invertBody = bodySchema(
  'invert',
  { image: idSchema, model: { type: 'string', description: 'a model name (GET /v1/models); default: the first' } },
  ['image'],
);
const editBody = bodySchema('edit', {}, [], ['returnMasks']);

export function leditsRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Body: Record<string, unknown> }>(
    '/v1/inversions',
    {
      schema: {
        summary: 'Invert an uploaded image (LEDITS step 1); a job whose result is { inversionId, reconstructionId, settings }',
        tags: ['ledits'],
        body: invertBody,
        'x-responses': { 202: '{ job }', 400: 'ERR_INVALID_OPTION', 404: 'no such image', 429: 'ERR_QUEUE_FULL' },
      },
    },
    async (request, reply) => {
      const { image, model: modelName, ...rest } = request.body;
      const served = ctx.models.get(modelName);
      const options = { ...rest, seed: seedFromJson(rest.seed) } as InvertOptions;
      const resolved = validateInvertOptions(options, served.context());
      checkSteps(resolved.steps, ctx.options.limits);
      if (!(await ctx.artifacts.meta('image', image))) throw notFound('image', String(image));
      const spec: JobSpec = { kind: 'invert', image: image as string, options: { ...rest, seed: resolved.seed.toString() } };
      const job = await submitJob(ctx, request, served, spec);
      reply.code(202);
      return { job: publicJob(job) };
    },
  );

  storedMetaRoute(app, ctx, {
    url: '/v1/inversions/:id',
    kind: 'inversion',
    what: 'inversion',
    summary: 'An inversion: its model, settings, size in bytes',
    tags: ['ledits'],
    extra: (meta) => ({ fileUrl: `${ctx.prefix}/v1/inversions/${meta.id}/file` }),
  });

  app.get<{ Params: { id: string } }>(
    '/v1/inversions/:id/file',
    { schema: { summary: 'The inversion as a safetensors file (torchedit loadInversion, or Python)', tags: ['ledits'], params: idParams } },
    async (request, reply) => {
      const meta = await storedMeta(ctx, 'inversion', 'inversion', request.params.id);
      reply.header('content-type', 'application/octet-stream');
      reply.header('content-disposition', `attachment; filename="${meta.id}.inversion.safetensors"`);
      reply.header('content-length', String(meta.bytes));
      if (ctx.remote) return (await ctx.remote.artifacts.getBytes('inversion', meta.id))?.bytes ?? notFound('inversion', meta.id);
      return reply.send(createReadStream(ctx.storage.path('inversion', meta.id)));
    },
  );

  app.put<{ Querystring: { model?: string } }>(
    '/v1/inversions',
    {
      schema: {
        summary: 'Upload an inversion file (application/octet-stream) made with one of the served models; ?model= names it',
        tags: ['ledits'],
        querystring: { type: 'object', properties: { model: { type: 'string' } } },
        'x-responses': { 201: '{ id, settings }', 400: 'ERR_FILE_FORMAT or ERR_MODEL_MISMATCH' },
      },
    },
    async (request, reply) => {
      const served = ctx.models.get(request.query.model);
      if (!Buffer.isBuffer(request.body))
        throw new HttpError(415, 'ERR_UNSUPPORTED_MEDIA_TYPE', 'Expected the file as an application/octet-stream body');
      const meta = await ctx.artifacts.putInversionFile(request.body, served.name, served.model);
      reply.code(201);
      return { id: meta.id, model: served.name, settings: meta.info?.settings };
    },
  );

  app.post<{ Params: { id: string }; Body: Record<string, unknown> }>(
    '/v1/inversions/:id/edits',
    {
      schema: {
        summary: 'Edit an inversion (LEDITS step 2: concepts and/or a target prompt); a job whose result is an image',
        tags: ['ledits'],
        params: idParams,
        body: editBody,
        'x-responses': { 202: '{ job }', 400: 'ERR_INVALID_OPTION', 404: 'no such inversion', 429: 'ERR_QUEUE_FULL' },
      },
    },
    async (request, reply) => {
      const meta = await storedMeta(ctx, 'inversion', 'inversion', request.params.id);
      const served = ctx.models.get(meta.model);
      const body = request.body ?? {};
      const steps = (meta.info?.settings as { steps?: number } | undefined)?.steps;
      // A user mask is an uploaded image's id here: never a path on the server.
      const maskId = body.userMask;
      if (maskId !== undefined && maskId !== null && !(await ctx.artifacts.meta('image', maskId))) {
        throw new TorchEditError(
          'ERR_INVALID_OPTION',
          `Expected the id of an uploaded image for userMask but received ${JSON.stringify(maskId)}`,
          { option: 'userMask' },
        );
      }
      const options = { ...body, userMask: undefined } as EditOptions;
      const resolved = validateEditOptions(options, served.context({ inversionSteps: steps }));
      checkAtMost('concepts', resolved.concepts.length, ctx.options.limits.concepts, 'an array of length');
      const spec: JobSpec = { kind: 'edit', inversion: meta.id, options: { ...body, userMask: undefined } };
      if (typeof maskId === 'string') spec.mask = maskId;
      const job = await submitJob(ctx, request, served, spec);
      reply.code(202);
      return { job: publicJob(job) };
    },
  );
}
