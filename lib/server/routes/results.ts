/** `GET /v1/results/:id.png` (also `.webp`, `.jpg`): a result image, stored as PNG, converted on request. */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { notFound } from '../errors.js';
import { encodeAs } from '../images.js';

const FORMATS: Record<string, { format: 'png' | 'jpeg' | 'webp'; type: string }> = {
  png: { format: 'png', type: 'image/png' },
  jpg: { format: 'jpeg', type: 'image/jpeg' },
  jpeg: { format: 'jpeg', type: 'image/jpeg' },
  webp: { format: 'webp', type: 'image/webp' },
};

export function resultRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Params: { file: string } }>(
    '/v1/results/:file',
    {
      schema: {
        summary: 'A result image: <id>.png, <id>.webp or <id>.jpg',
        tags: ['results'],
        params: { type: 'object', properties: { file: { type: 'string', pattern: '^[0-9a-f]{32}\\.(png|webp|jpg|jpeg)$' } } },
      },
    },
    async (request, reply) => {
      const match = /^([0-9a-f]{32})\.(png|webp|jpe?g)$/.exec(request.params.file);
      const found = match ? await ctx.artifacts.getBytes('result', match[1]) : undefined;
      if (!match || !found) throw notFound('result', request.params.file);
      const { format, type } = FORMATS[match[2]];
      reply.header('content-type', type);
      reply.header('cache-control', 'private, max-age=31536000, immutable');
      if (request.query && (request.query as { download?: string }).download !== undefined) {
        reply.header('content-disposition', `attachment; filename="${match[1]}.${match[2]}"`);
      }
      return encodeAs(found.bytes, format);
    },
  );
}
