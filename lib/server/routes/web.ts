/**
 * The web page: `/` and its few files, served from a fixed list (no request path reaches the file
 * system): web/index.html and web/style.css, the page's script compiled by the build
 * (dist/web/app.js), and the shipped example image.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { packageRoot } from '../../binding.js';
import '../context.js';
import { notFound } from '../errors.js';

const FILES: Record<string, { path: string; type: string }> = {
  '': { path: join(packageRoot, 'web', 'index.html'), type: 'text/html; charset=utf-8' },
  'style.css': { path: join(packageRoot, 'web', 'style.css'), type: 'text/css; charset=utf-8' },
  'app.js': { path: join(packageRoot, 'dist', 'web', 'app.js'), type: 'text/javascript; charset=utf-8' },
  'example.png': { path: join(packageRoot, 'examples', 'red-circle.png'), type: 'image/png' },
};

export function webRoutes(app: FastifyInstance): void {
  const serve = async (name: string, reply: import('fastify').FastifyReply) => {
    const file = FILES[name];
    if (!file) throw notFound('file', name);
    reply.header('content-type', file.type);
    reply.header('cache-control', 'no-cache');
    reply.header(
      'content-security-policy',
      "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'",
    );
    reply.header('x-content-type-options', 'nosniff');
    return readFile(file.path);
  };
  app.get('/', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
    // Mounted under a prefix, `/prefix` becomes `/prefix/`: the page's URLs are relative to it.
    const path = request.url.split('?')[0];
    if (!path.endsWith('/')) return reply.redirect(`${path}/`);
    return serve('', reply);
  });
  app.get<{ Params: { file: string } }>('/web/:file', { config: { public: true }, schema: { hide: true } }, async (request, reply) =>
    serve(request.params.file, reply),
  );
}
