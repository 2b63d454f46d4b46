/**
 * A job as data (`JobSpec`: its kind, the ids of its inputs, its options as JSON with the seed as
 * a decimal string) and `runJob`, what each kind does. One runner for both places a job runs: the
 * server's own queue (inputs and outputs in its Storage) and a scale-out worker (inputs and
 * outputs in a shared ArtifactStore). A spec is complete: the seed is drawn when the job is
 * submitted and recorded in it, so a job retried on another worker makes the same result.
 */
import type { StableDiffusionModel } from '../model/model.js';
import type { ImagicResult } from '../pipelines/imagic/result.js';
import type { Inversion } from '../pipelines/ledits/inversion.js';
import { toImages } from '../pipelines/result.js';
import type { JobContext } from './queue.js';

/** Options as JSON: what the library takes, with `seed` as a decimal string. */
export type JsonOptions = Record<string, unknown>;

export type JobSpec =
  | { kind: 'invert'; image: string; options: JsonOptions }
  | { kind: 'edit'; inversion: string; mask?: string; options: JsonOptions }
  | { kind: 'generate'; prompt: string; options: JsonOptions }
  | { kind: 'imagic'; image: string; targetPrompt: string; options: JsonOptions }
  | { kind: 'imagicGenerate'; imagic: string; options: JsonOptions };

export type JobKind = JobSpec['kind'];

/** Where a job reads its inputs and writes its outputs, and the model it runs on. */
export interface JobEnv {
  model: StableDiffusionModel;
  modelName: string;
  /** The prefix of the result URLs (the server's mount point). */
  prefix: string;
  /** An uploaded image's bytes; throws 404 when it is gone. */
  imageBytes(id: string): Promise<Buffer>;
  acquireInversion(id: string): Promise<{ value: Inversion; release: () => void }>;
  acquireImagic(id: string): Promise<{ value: ImagicResult; release: () => void }>;
  /** Stores an inversion and takes ownership of it (it disposes it, or keeps it live). */
  putInversion(inversion: Inversion, info: Record<string, unknown>): Promise<{ id: string }>;
  /** Stores an Imagic result and takes ownership of it. */
  putImagic(result: ImagicResult, info: Record<string, unknown>): Promise<{ id: string }>;
  putResult(png: Buffer, meta: { width: number; height: number; info: Record<string, unknown> }): Promise<{ id: string }>;
}

/** The options a library call takes: the JSON options with the seed back as a bigint. */
function libraryOptions(options: JsonOptions): Record<string, unknown> {
  return typeof options.seed === 'string' ? { ...options, seed: BigInt(options.seed) } : { ...options };
}

/** At most `n` points of a loss curve (means of equal runs), for the page's chart. */
function thin(values: number[], n = 400): number[] {
  if (values.length <= n) return values;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const from = Math.floor((i * values.length) / n);
    const to = Math.floor(((i + 1) * values.length) / n);
    let sum = 0;
    for (let j = from; j < to; j++) sum += values[j];
    out.push(sum / (to - from));
  }
  return out;
}

/** Runs a job; resolves to its result (ids and URLs), as `GET /v1/jobs/:id` shows it. */
export async function runJob(spec: JobSpec, env: JobEnv, { signal, onProgress }: JobContext): Promise<Record<string, unknown>> {
  const options = libraryOptions(spec.options);
  const url = (id: string) => `${env.prefix}/v1/results/${id}.png`;
  switch (spec.kind) {
    case 'invert': {
      const bytes = await env.imageBytes(spec.image);
      const inversion = await env.model.invert(bytes, { ...options, signal, onProgress });
      const settings = inversion.settings;
      // The reconstruction: the VAE's decoding of x0, which an edit without guidance replays exactly.
      let png: Buffer;
      let size: { width: number; height: number };
      try {
        using decoded = await env.model.decodeLatents(inversion.tensors.x0, { signal });
        const [picture] = await toImages(decoded);
        png = await picture.toBuffer('png');
        size = { width: picture.width, height: picture.height };
      } catch (error) {
        inversion.dispose();
        throw error;
      }
      const stored = await env.putInversion(inversion, { settings, image: spec.image });
      const reconstruction = await env.putResult(png, { ...size, info: { reconstructionOf: stored.id } });
      return { inversionId: stored.id, settings, reconstructionId: reconstruction.id, reconstructionUrl: url(reconstruction.id) };
    }
    case 'edit': {
      const mask = spec.mask === undefined ? undefined : await env.imageBytes(spec.mask);
      const inversion = await env.acquireInversion(spec.inversion);
      try {
        const result = await inversion.value.edit({ ...options, ...(mask ? { userMask: mask } : {}), signal, onProgress });
        try {
          const png = await result.image.toBuffer('png');
          const { width, height } = result.image;
          const seed = result.seed.toString();
          const stored = await env.putResult(png, { width, height, info: { inversion: spec.inversion, seed } });
          return { resultId: stored.id, url: url(stored.id), seed, width, height };
        } finally {
          result.dispose();
        }
      } finally {
        inversion.release();
      }
    }
    case 'generate': {
      const result = await env.model.generate(spec.prompt, { ...options, signal, onProgress });
      try {
        const results = [];
        const seed = result.seed.toString();
        for (const image of result.images) {
          const stored = await env.putResult(await image.toBuffer('png'), {
            width: image.width,
            height: image.height,
            info: { prompt: spec.prompt, seed },
          });
          results.push({ id: stored.id, url: url(stored.id) });
        }
        return { results, seed };
      } finally {
        result.dispose();
      }
    }
    case 'imagic': {
      const bytes = await env.imageBytes(spec.image);
      const result = await env.model.imagic(bytes, spec.targetPrompt, { ...options, signal, onProgress });
      const losses = { embedding: thin(result.losses.embedding), finetune: thin(result.losses.finetune) };
      const settings = result.settings;
      const stored = await env.putImagic(result, { settings, image: spec.image, losses });
      return { imagicId: stored.id, settings, losses };
    }
    case 'imagicGenerate': {
      const imagic = await env.acquireImagic(spec.imagic);
      const etas = options.etas as number[];
      try {
        const results = await imagic.value.sweep({ ...(options as { etas: number[] }), signal, onProgress });
        try {
          const out = [];
          for (const [i, r] of results.entries()) {
            const stored = await env.putResult(await r.image.toBuffer('png'), {
              width: r.image.width,
              height: r.image.height,
              info: { imagic: spec.imagic, eta: etas[i], seed: r.seed.toString() },
            });
            out.push({ id: stored.id, url: url(stored.id), eta: etas[i] });
          }
          return { results: out, seed: String(spec.options.seed) };
        } finally {
          for (const r of results) r.dispose();
        }
      } finally {
        imagic.release();
      }
    }
  }
}
