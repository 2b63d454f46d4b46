/**
 * What the routes of stored objects (inversions, Imagic results) share: finding one by id, with a
 * 404 that names it when there is none, the uploaded image a job was given, and `GET
 * /v1/<kind>/:id`, its public metadata.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { HttpError, notFound } from '../errors.js';
import { idParams } from '../schemas.js';
import type { StoredKind, StoredMeta } from '../storage.js';

/** The metadata of the stored `kind` object `id`; a 404 `No <what> "<id>"` when there is none. */
export function storedMeta(ctx: ServerContext, kind: StoredKind, what: string, id: string): StoredMeta {
  const meta = ctx.storage.meta(kind, id);
  if (!meta) throw notFound(what, id);
  return meta;
}

/** The bytes of the uploaded image a queued job was given; a 404 when it was deleted since the job was submitted. */
export async function uploadedImageForJob(ctx: ServerContext, imageId: string): Promise<Buffer> {
  const found = await ctx.storage.getBytes('image', imageId);
  if (!found) throw new HttpError(404, 'ERR_NOT_FOUND', `The image ${imageId} was deleted before the job ran`);
  return found.bytes;
}

export interface StoredMetaRoute {
  /** The route's URL, with an `:id` parameter. */
  url: string;
  kind: StoredKind;
  /** How a 404 names the object (`No <what> "<id>"`). */
  what: string;
  summary: string;
  tags: string[];
  /** What the kind answers with after the shared fields (id, model, createdAt, bytes, settings). */
  extra(meta: StoredMeta): Record<string, unknown>;
}

/** `GET <url>`: a stored object's id, model, creation time, size in bytes and settings, then `extra`. */
export function storedMetaRoute(app: FastifyInstance, ctx: ServerContext, route: StoredMetaRoute): void {
  app.get<{ Params: { id: string } }>(
    route.url,
    { schema: { summary: route.summary, tags: route.tags, params: idParams } },
    async (request) => {
      const meta = storedMeta(ctx, route.kind, route.what, request.params.id);
      return {
        id: meta.id,
        model: meta.model,
        createdAt: meta.createdAt,
        bytes: meta.bytes,
        settings: meta.info?.settings,
        ...route.extra(meta),
      };
    },
  );
}
