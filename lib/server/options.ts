/**
 * The options of the service (`createServer(options)`, `torchedit serve`), with their defaults:
 * one declaration each, documented here. Limits are safe by default: a public deployment only
 * has to add tokens (and a host).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultModelPath } from '../model/model.js';
import { type ResolvedScaleOptions, resolveScaleOptions, type ScaleOptions } from './scale/options.js';

/** Bounds on what one request or the whole service may use. */
export interface ServerLimits {
  /** Largest request body in bytes (an upload, a JSON body, an inversion file). Defaults to `32 MiB`. */
  bodyBytes?: number;
  /** Most pixels an uploaded image may declare (sharp's `limitInputPixels`); more is 413 before decoding. Defaults to `16_777_216` (4096²). */
  imagePixels?: number;
  /** Most `steps` an inversion, a generation or an Imagic generation may ask for. Defaults to `200`. */
  steps?: number;
  /** Most concepts in one edit. Defaults to `8`. */
  concepts?: number;
  /** Most Imagic training steps (embedding + fine-tune) of one request. Defaults to `2000`. */
  imagicSteps?: number;
  /** Most images one generation (`batchSize`) or one Imagic sweep (`etas`) makes. Defaults to `8`. */
  images?: number;
  /** Jobs waiting in the queue (not counting the running one); a full queue answers 429. Defaults to `16`. */
  queue?: number;
  /** Milliseconds a job may run before it is aborted (`ERR_TIMEOUT`). Defaults to `600_000` (10 min). */
  jobTimeoutMs?: number;
  /** With tokens: jobs one token may have queued or running at once; more is 429. Defaults to `4`. */
  perClientJobs?: number;
  /** Stored uploaded images kept; the least recently used go first. Defaults to `500`. */
  storedImages?: number;
  /** Stored inversions kept; the least recently used go first. Defaults to `200`. */
  storedInversions?: number;
  /** Stored result images kept; the least recently used go first. Defaults to `2000`. */
  storedResults?: number;
  /** Stored Imagic results kept (each a fine-tuned UNet); the least recently used go first. Defaults to `10`. */
  storedImagic?: number;
  /** Job records kept (finished ones beyond this are forgotten, oldest first). Defaults to `5000`. */
  storedJobs?: number;
  /** Bytes of files and live inversions kept in memory (an LRU in front of the data directory). Defaults to `256 MiB`. */
  cacheBytes?: number;
  /** Milliseconds after its last use that a stored object is deleted; `0` keeps everything. Defaults to `7 days`. */
  ttlMs?: number;
}

/** Options of {@link createServer} and of the `torchedit serve` command. */
export interface ServerOptions {
  /**
   * The models served, by name; the first is the default. A path is a bundle folder.
   * Defaults to `{ 'shapes-64': <the shipped model> }`.
   */
  models?: Record<string, string>;
  /** Where images, inversions, results and the job log are stored. Defaults to `<os tmpdir>/torchedit-serve`. */
  dataDir?: string;
  /**
   * Bearer tokens; when any is set every route but the page and `/healthz` needs `Authorization: Bearer <token>`.
   * Defaults to none (no authentication: keep the default host, 127.0.0.1).
   */
  tokens?: string[];
  /** Origins allowed by CORS (`'*'` for any). Defaults to none: CORS off. */
  corsOrigins?: string[];
  /** Limits; see {@link ServerLimits}. */
  limits?: ServerLimits;
  /** pino logger options, or `false` for none. Defaults to `{ level: 'info' }`. */
  logger?: boolean | Record<string, unknown>;
  /** Serve the web page at `/`. Defaults to `true`. */
  webPage?: boolean;
  /** Milliseconds running jobs get to finish on `close()` before they are aborted. Defaults to `30_000`. */
  shutdownGraceMs?: number;
  /** Milliseconds between two sweeps of expired objects. Defaults to `600_000` (10 min). */
  sweepIntervalMs?: number;
  /** Where the models run: `cpu`, `cuda`, `cuda:N` or `auto`. Defaults to `cpu`. */
  device?: string;
  /** Cast the models' weights (`float32`, `float16`, `bfloat16`). Defaults to each bundle's own. */
  dtype?: 'float32' | 'float16' | 'bfloat16';
  /** libtorch intra-op threads (`configure({ threads })`). Defaults to libtorch's own choice. */
  threads?: number;
  /**
   * Scale-out: queue jobs on Redis for `torchedit worker`s (BullMQ) instead of running them in
   * this process; artifacts live in the shared store. Defaults to none: jobs run here.
   */
  scale?: ScaleOptions;
}

/** Every limit, with the defaults filled in. */
export type ResolvedLimits = Required<ServerLimits>;

/** The options with their defaults filled in and checked (what the routes read). */
export interface ResolvedServerOptions {
  models: Record<string, string>;
  dataDir: string;
  tokens: string[];
  corsOrigins: string[];
  limits: ResolvedLimits;
  logger: boolean | Record<string, unknown>;
  webPage: boolean;
  shutdownGraceMs: number;
  sweepIntervalMs: number;
  threads: number | undefined;
  device: string | undefined;
  dtype: ServerOptions['dtype'];
  scale: ResolvedScaleOptions | undefined;
}

const MIB = 1024 * 1024;

export const defaultLimits: ResolvedLimits = {
  bodyBytes: 32 * MIB,
  imagePixels: 4096 * 4096,
  steps: 200,
  concepts: 8,
  imagicSteps: 2000,
  images: 8,
  queue: 16,
  jobTimeoutMs: 600_000,
  perClientJobs: 4,
  storedImages: 500,
  storedInversions: 200,
  storedResults: 2000,
  storedImagic: 10,
  storedJobs: 5000,
  cacheBytes: 256 * MIB,
  ttlMs: 7 * 24 * 3600_000,
};

function positiveInteger(name: string, value: unknown, allowZero = false): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new TypeError(`Expected ${allowZero ? 'a non-negative' : 'a positive'} integer for ${name} but received ${String(value)}`);
  }
  return value;
}

/** Fills the defaults and checks every value (a bad one throws a TypeError naming it). */
export function resolveServerOptions(options: ServerOptions = {}): ResolvedServerOptions {
  const limits = { ...defaultLimits };
  for (const [key, value] of Object.entries(options.limits ?? {})) {
    if (!(key in defaultLimits)) throw new TypeError(`Unknown limit ${key}; expected one of ${Object.keys(defaultLimits).join(', ')}`);
    if (value === undefined) continue;
    limits[key as keyof ResolvedLimits] = positiveInteger(`limits.${key}`, value, key === 'ttlMs');
  }
  const models = options.models ?? { 'shapes-64': defaultModelPath };
  if (Object.keys(models).length === 0) throw new TypeError('Expected at least one model in models');
  for (const name of Object.keys(models)) {
    if (!/^[\w.-]{1,64}$/.test(name))
      throw new TypeError(`Expected a model name of letters, digits, '.', '_' or '-' but received '${name}'`);
  }
  const tokens = (options.tokens ?? []).filter((t) => t !== '');
  for (const token of tokens) if (token.length < 16) throw new TypeError('Expected tokens of at least 16 characters');
  return {
    models,
    dataDir: options.dataDir ?? join(tmpdir(), 'torchedit-serve'),
    tokens,
    corsOrigins: options.corsOrigins ?? [],
    limits,
    logger: options.logger ?? { level: 'info' },
    webPage: options.webPage ?? true,
    shutdownGraceMs: positiveInteger('shutdownGraceMs', options.shutdownGraceMs ?? 30_000, true),
    sweepIntervalMs: positiveInteger('sweepIntervalMs', options.sweepIntervalMs ?? 600_000),
    threads: options.threads === undefined ? undefined : positiveInteger('threads', options.threads),
    device: options.device,
    dtype: options.dtype,
    scale: options.scale === undefined ? undefined : resolveScaleOptions(options.scale),
  };
}
