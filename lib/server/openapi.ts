/**
 * The OpenAPI 3.1 document (`GET /v1/openapi.json`), generated from the routes as they are
 * registered: their paths, methods, summaries, parameters and body schemas (the bodies' schemas
 * are derived from the option schema, lib/server/schemas.ts).
 */
import type { RouteOptions } from 'fastify';
import type { JsonSchema } from './schemas.js';

interface Operation {
  summary?: string;
  tags?: string[];
  parameters?: JsonSchema[];
  requestBody?: JsonSchema;
  responses: Record<string, JsonSchema>;
  security?: JsonSchema[];
}

export class OpenApi {
  private readonly paths: Record<string, Record<string, Operation>> = {};

  constructor(
    private readonly version: string,
    private readonly secured: boolean,
  ) {}

  /** Records one route (an onRoute hook calls it). */
  add(route: RouteOptions): void {
    const schema = (route.schema ?? {}) as JsonSchema & { params?: JsonSchema; querystring?: JsonSchema; body?: JsonSchema };
    if (schema.hide) return;
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter((m) => m !== 'HEAD');
    const path = route.url.replace(/:(\w+)/g, '{$1}');
    const parameters: JsonSchema[] = [];
    for (const [where, part] of [
      ['path', schema.params],
      ['query', schema.querystring],
    ] as const) {
      const properties = (part?.properties ?? {}) as Record<string, JsonSchema>;
      for (const [name, s] of Object.entries(properties)) parameters.push({ name, in: where, required: where === 'path', schema: s });
    }
    const described = (schema['x-responses'] ?? {}) as Record<string, string>;
    const responses: Record<string, JsonSchema> = {};
    const produces = (schema['x-produces'] as string | undefined) ?? 'application/json';
    responses[Object.keys(described).find((s) => s.startsWith('2')) ?? '200'] = {
      description: described['200'] ?? described['201'] ?? described['202'] ?? 'OK',
      content: { [produces]: {} },
    };
    for (const [status, text] of Object.entries(described)) {
      if (!status.startsWith('2'))
        responses[status] = { description: text, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    }
    for (const method of methods) {
      const op: Operation = { summary: schema.summary as string | undefined, tags: schema.tags as string[] | undefined, responses };
      if (parameters.length) op.parameters = parameters;
      if (schema.body) op.requestBody = { required: true, content: { 'application/json': { schema: schema.body } } };
      if (this.secured && (route.config as { public?: boolean } | undefined)?.public !== true) op.security = [{ bearer: [] }];
      this.paths[path] ??= {};
      this.paths[path][method.toLowerCase()] = op;
    }
  }

  document(): JsonSchema {
    return {
      openapi: '3.1.0',
      info: {
        title: 'torchedit',
        version: this.version,
        description:
          "Edit images with Stable Diffusion (LEDITS, Imagic) and generate them. Long work runs as jobs: follow GET /v1/jobs/{id} or its events (SSE). Errors are { error: { code, message, option? } } with the library's codes.",
      },
      paths: this.paths,
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
        schemas: {
          Error: {
            type: 'object',
            properties: {
              error: {
                type: 'object',
                properties: { code: { type: 'string' }, message: { type: 'string' }, option: { type: 'string' } },
                required: ['code', 'message'],
              },
            },
          },
        },
      },
    };
  }
}
