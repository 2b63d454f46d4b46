/**
 * The service: `torcheditRoutes`, a fastify plugin with every route, and `createServer`, a fastify
 * app with it registered at the root (what `torchedit serve` listens with).
 *
 * fastify because it is maintained, fast, validates with JSON Schemas (which also give the
 * OpenAPI document here), parses multipart uploads with @fastify/multipart, logs with pino (request
 * ids, no bodies), and embeds: an existing fastify app registers the plugin under a prefix.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { packageRoot } from '../binding.js';
import type { LoadModelOptions } from '../model/model.js';
import { configure } from '../runtime.js';
import { Auth } from './auth.js';
import type { ServerContext } from './context.js';
import { HttpError, toHttp } from './errors.js';
import { newId } from './ids.js';
import { JobLog } from './jobLog.js';
import { Metrics } from './metrics.js';
import { ModelRegistry } from './models.js';
import { OpenApi } from './openapi.js';
import { resolveServerOptions, type ServerOptions } from './options.js';
import { JobQueue } from './queue.js';
import { generateRoutes } from './routes/generate.js';
import { imageRoutes } from './routes/images.js';
import { imagicRoutes } from './routes/imagic.js';
import { jobRoutes } from './routes/jobs.js';
import { leditsRoutes } from './routes/ledits.js';
import { resultRoutes } from './routes/results.js';
import { systemRoutes } from './routes/system.js';
import { webRoutes } from './routes/web.js';
import { checkStructure, type JsonSchema } from './schemas.js';
import { closeAllStreams } from './sse.js';
import { DirectoryArtifactStore } from './scale/directoryStore.js';
import { RedisArtifactStore } from './scale/redisStore.js';
import { RemoteArtifacts } from './scale/remoteArtifacts.js';
import { RedisJobQueue } from './scale/redisQueue.js';
import { Storage } from './storage.js';

async function packageVersion(): Promise<string> {
  try {
    return (JSON.parse(await readFile(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** `/v1/jobs/:id` → a regular expression matching its URLs (for 405 and CORS preflights). */
function routePattern(url: string): RegExp {
  const escaped = url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:\w+/g, '[^/]+');
  return new RegExp(`^${escaped}$`);
}

/**
 * Every route of the service, as a fastify plugin. Options as {@link createServer}'s (limits on
 * body size apply through the plugin's content parsers). Loads the models when registered;
 * closing the app drains the queue (running jobs get `shutdownGraceMs`), ends event streams and
 * disposes the models.
 */
export const torcheditRoutes: FastifyPluginAsync<ServerOptions> = async (app, raw) => {
  const { logger: _logger, ...pluginOptions } = raw as ServerOptions & Record<string, unknown>;
  const options = resolveServerOptions(pluginOptions);
  if (options.threads !== undefined) configure({ threads: options.threads });
  await mkdir(options.dataDir, { recursive: true });
  const storage = new Storage(options.dataDir, {
    counts: {
      image: options.limits.storedImages,
      inversion: options.limits.storedInversions,
      result: options.limits.storedResults,
      imagic: options.limits.storedImagic,
    },
    cacheBytes: options.limits.cacheBytes,
    ttlMs: options.limits.ttlMs,
  });
  await storage.open();
  const metrics = new Metrics();
  const log = new JobLog(options.dataDir);
  const queue = new JobQueue(
    {
      maxQueue: options.limits.queue,
      timeoutMs: options.limits.jobTimeoutMs,
      perClient: options.limits.perClientJobs,
      keep: options.limits.storedJobs,
      log,
      onFinished: (record, seconds) => {
        metrics.jobFinished(record, seconds);
        app.log.info(
          { job: record.id, kind: record.kind, state: record.state, seconds: Math.round(seconds * 1000) / 1000, error: record.error?.code },
          'job finished',
        );
      },
    },
    log.open(options.limits.storedJobs),
  );
  const models = new ModelRegistry();
  await models.load(options.models, { device: options.device as LoadModelOptions['device'], dtype: options.dtype });
  storage.startSweeper(options.sweepIntervalMs);
  const auth = new Auth(options.tokens);
  let remote: ServerContext['remote'];
  if (options.scale) {
    const redisQueue = new RedisJobQueue({
      scale: options.scale,
      maxQueue: options.limits.queue,
      keep: options.limits.storedJobs,
      onError: (error) => app.log.warn({ err: error.message }, 'redis'),
    });
    await redisQueue.open();
    const store = options.scale.artifacts;
    remote = {
      queue: redisQueue,
      artifacts: new RemoteArtifacts(
        store.type === 'dir'
          ? new DirectoryArtifactStore(store.dir)
          : new RedisArtifactStore(redisQueue.connection, {
              prefix: options.scale.queue,
              maxBytes: store.maxBytes,
              ttlSeconds: store.ttlSeconds,
            }),
      ),
    };
  }
  const ctx: ServerContext = {
    options,
    storage,
    queue,
    artifacts: remote?.artifacts ?? storage,
    jobs: remote?.queue ?? queue,
    remote,
    models,
    metrics,
    auth,
    prefix: app.prefix,
  };
  const openapi = new OpenApi(await packageVersion(), auth.enabled);
  const patterns: { pattern: RegExp; methods: Set<string> }[] = [];

  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const url = route.url.startsWith(app.prefix) ? route.url.slice(app.prefix.length) || '/' : route.url;
    let entry = patterns.find((p) => p.pattern.source === routePattern(route.url).source);
    if (!entry) {
      entry = { pattern: routePattern(route.url), methods: new Set() };
      patterns.push(entry);
    }
    for (const m of methods) entry.methods.add(m);
    openapi.add({ ...route, url });
  });

  // Bodies: JSON (fastify's parser), images and inversion files as raw bytes, multipart uploads.
  app.addContentTypeParser(
    ['image/png', 'image/jpeg', 'image/webp', 'application/octet-stream'],
    { parseAs: 'buffer', bodyLimit: options.limits.bodyBytes },
    (_request, body, done) => done(null, body),
  );
  await app.register(multipart, {
    limits: { fileSize: options.limits.bodyBytes, files: 1, fields: 16, parts: 20 },
    throwFileSizeLimit: true,
  });

  // Bodies are checked for structure (an object, known keys); their values by the library.
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (httpPart !== 'body') return (data: unknown) => ({ value: data });
    return (data: unknown) => {
      try {
        checkStructure(schema as JsonSchema, data ?? {});
        return { value: data };
      } catch (error) {
        return { error: error as Error };
      }
    };
  });

  const allowed = new Set(options.corsOrigins);
  const corsOrigin = (origin: string | undefined) =>
    origin && (allowed.has('*') || allowed.has(origin)) ? (allowed.has('*') ? '*' : origin) : undefined;

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    const origin = corsOrigin(request.headers.origin);
    if (origin) {
      reply.header('access-control-allow-origin', origin);
      reply.header('vary', 'Origin');
    }
    // Deny by default: only routes marked public (the page, /healthz) go without a token. The
    // decision is the matched route's, never the raw URL's (`/%761/jobs` is routed as /v1/jobs).
    const open = (request.routeOptions.config as { public?: boolean } | undefined)?.public === true;
    if (request.method !== 'OPTIONS' && !open) request.torcheditClient = auth.check(request.headers.authorization);
  });

  app.addHook('onResponse', async (_request, reply) => metrics.request(reply.statusCode));

  app.setErrorHandler((error, request, reply) => {
    const { status, headers, body } = toHttp(error);
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    reply.code(status).headers(headers).send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    const matching = patterns.filter((p) => p.pattern.test(path));
    if (matching.length) {
      const methods = [...new Set(matching.flatMap((p) => [...p.methods]))].filter((m) => m !== 'HEAD');
      const origin = corsOrigin(request.headers.origin);
      if (request.method === 'OPTIONS' && origin) {
        reply
          .code(204)
          .headers({
            'access-control-allow-methods': methods.join(', '),
            'access-control-allow-headers': 'authorization, content-type',
            'access-control-max-age': '600',
          })
          .send();
        return;
      }
      const error = new HttpError(405, 'ERR_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path}; use ${methods.join(', ')}`, {
        allow: methods.join(', '),
      });
      const answer = toHttp(error);
      reply.code(405).headers(answer.headers).send(answer.body);
      return;
    }
    const answer = toHttp(new HttpError(404, 'ERR_NOT_FOUND', `No route ${request.method} ${path}`));
    reply.code(404).send(answer.body);
  });

  imageRoutes(app, ctx);
  leditsRoutes(app, ctx);
  jobRoutes(app, ctx);
  resultRoutes(app, ctx);
  generateRoutes(app, ctx);
  imagicRoutes(app, ctx);
  systemRoutes(app, ctx);
  app.get('/v1/openapi.json', { schema: { summary: 'This document', tags: ['system'] } }, async () => openapi.document());
  if (options.webPage) webRoutes(app);

  app.addHook('preClose', async () => {
    await queue.drain(options.shutdownGraceMs);
    closeAllStreams();
  });
  app.addHook('onClose', async () => {
    await remote?.queue.close();
    storage.close();
    metrics.close();
    models.dispose();
  });
};
// Hooks and the not-found handler apply to the plugin's own routes (encapsulation): mounting it
// in an app leaves the app's other routes alone.

/** Options of {@link createServer}: the service's, plus nothing else (listen with `app.listen`). */
export type CreateServerOptions = ServerOptions;

/**
 * A fastify app serving torchedit: `await app.listen({ port, host })`, `await app.close()`
 * (graceful: running jobs get `shutdownGraceMs`). Models load before it resolves.
 */
export async function createServer(options: CreateServerOptions = {}): Promise<FastifyInstance> {
  const resolved = resolveServerOptions(options);
  const app = Fastify({
    logger: resolved.logger === true ? { level: 'info' } : resolved.logger,
    bodyLimit: resolved.limits.bodyBytes,
    genReqId: () => newId().slice(0, 16),
    requestIdHeader: false,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    // The routes plugin loads its models before it resolves: a full-size Stable Diffusion bundle
    // takes longer than fastify's 10 s plugin timeout (so did shapes-64 on a loaded machine).
    pluginTimeout: 0,
  });
  await app.register(torcheditRoutes, options);
  await app.ready();
  return app;
}
