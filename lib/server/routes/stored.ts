/**
 * What the routes of stored objects (inversions, Imagic results) share: finding one by id through
 * the server's artifacts (its own storage, or with workers the shared store), with a 404 that
 * names it when there is none, and `GET /v1/<kind>/:id`, its public metadata.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { notFound } from '../errors.js';
import { idParams } from '../schemas.js';
import type { StoredKind, StoredMeta } from '../storage.js';

/** The metadata of the stored `kind` object `id`; a 404 `No <what> "<id>"` when there is none. */
export async function storedMeta(ctx: ServerContext, kind: StoredKind, what: string, id: string): Promise<StoredMeta> {
  const meta = await ctx.artifacts.meta(kind, id);
  if (!meta) throw notFound(what, id);
  return meta;
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
      const meta = await storedMeta(ctx, route.kind, route.what, request.params.id);
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
