/** What every route file gets: the resolved options and the service's parts. */
import type { FastifyRequest } from 'fastify';
import type { ArtifactAccess } from './artifacts.js';
import type { Auth } from './auth.js';
import type { JobBackend } from './jobBackend.js';
import type { Metrics } from './metrics.js';
import type { ModelRegistry } from './models.js';
import type { ResolvedServerOptions } from './options.js';
import type { JobQueue } from './queue.js';
import type { RemoteArtifacts } from './scale/remoteArtifacts.js';
import type { RedisJobQueue } from './scale/redisQueue.js';
import type { Storage } from './storage.js';

export interface ServerContext {
  options: ResolvedServerOptions;
  storage: Storage;
  queue: JobQueue;
  /** Where the routes read and write artifacts: `storage`, or the shared store with workers. */
  artifacts: ArtifactAccess;
  /** Where the routes read jobs: `queue`, or the Redis queue with workers. */
  jobs: JobBackend;
  /** With workers (`scale` option): the Redis queue and the shared artifact store. */
  remote?: { queue: RedisJobQueue; artifacts: RemoteArtifacts };
  models: ModelRegistry;
  metrics: Metrics;
  auth: Auth;
  /** The prefix the routes are mounted under (`''` at the root). */
  prefix: string;
}

declare module 'fastify' {
  /** A route's `config`: `public` routes (the page, /healthz) need no token. */
  interface FastifyContextConfig {
    public?: boolean;
  }
  /** What the OpenAPI document reads from a route's schema besides its parts. */
  interface FastifySchema {
    summary?: string;
    tags?: string[];
    /** Left out of the OpenAPI document (the web page's files). */
    hide?: boolean;
    /** Statuses and what they carry, for the document. */
    'x-responses'?: Record<string, string>;
    /** The media type of a success that is not JSON. */
    'x-produces'?: string;
  }
  interface FastifyRequest {
    /** A hash of the request's bearer token, when tokens are set. */
    torcheditClient?: string;
  }
}

/** The client a request was authenticated as. */
export function clientOf(request: FastifyRequest): string | undefined {
  return request.torcheditClient;
}
