/** `POST /v1/images` (raw body or multipart) and `GET /v1/images/:id`. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.js';
import { HttpError, notFound } from '../errors.js';
import { checkUpload, IMAGE_TYPES } from '../images.js';
import { idParams } from '../schemas.js';

/** The bytes of an upload: the body of an image/* or octet-stream request, or the first file of a multipart one. */
export async function uploadedBytes(request: FastifyRequest): Promise<Buffer> {
  if (request.isMultipart()) {
    const file = await request.file();
    if (!file) throw new HttpError(400, 'ERR_BAD_REQUEST', 'Expected a file in the multipart body');
    const bytes = await file.toBuffer();
    // A file cut at the size limit is too large, not corrupt.
    if (file.file.truncated) throw new HttpError(413, 'ERR_TOO_LARGE', 'The file is larger than the body size limit');
    return bytes;
  }
  if (!Buffer.isBuffer(request.body)) {
    throw new HttpError(
      415,
      'ERR_UNSUPPORTED_MEDIA_TYPE',
      'Expected an image body (image/png, image/jpeg, image/webp) or multipart/form-data',
    );
  }
  return request.body;
}

export function imageRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post(
    '/v1/images',
    {
      schema: {
        summary: 'Upload an image (PNG, JPEG or WebP): the raw bytes as the body, or a file in multipart/form-data',
        tags: ['images'],
        'x-responses': { 201: '{ id, format, width, height, url }', 400: 'ERR_IMAGE_READ', 413: 'ERR_TOO_LARGE' },
      },
    },
    async (request, reply) => {
      const bytes = await uploadedBytes(request);
      const image = await checkUpload(bytes, ctx.options.limits.imagePixels);
      const meta = await ctx.artifacts.putBytes('image', bytes, image);
      reply.code(201);
      return { id: meta.id, format: image.format, width: image.width, height: image.height, url: `${ctx.prefix}/v1/images/${meta.id}` };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/images/:id',
    { schema: { summary: 'An uploaded image, as it was uploaded', tags: ['images'], params: idParams } },
    async (request, reply) => {
      const found = await ctx.artifacts.getBytes('image', request.params.id);
      if (!found) throw notFound('image', request.params.id);
      reply.header('content-type', IMAGE_TYPES[found.meta.format ?? 'png'] ?? 'application/octet-stream');
      reply.header('cache-control', 'private, max-age=31536000, immutable');
      return found.bytes;
    },
  );
}
