/**
 * Text-to-image: DDIM sampling with classifier-free guidance. The loop runs natively in one job
 * (native/core/pipelines/text_to_image.cc); this file validates options and decodes the result.
 */
import { randomBytes } from 'node:crypto';
import { native } from '../binding.js';
import { checkImageSize } from '../image/read.js';
import { runJob, type JobOptions } from '../jobs.js';
import type { StableDiffusionModel } from '../model/model.js';
import { integerIn, numberIn, seed as seedOption } from '../options/validate.js';
import { Tensor } from '../tensor.js';
import { GenerationResult, toImages } from './result.js';

export interface TextToImageOptions extends JobOptions {
  /** What to steer away from (the unconditional prompt of CFG). Defaults to `''`. diffusers: `negative_prompt`. */
  negativePrompt?: string;
  /** Denoising steps, 1 to numTrainTimesteps. Defaults to `50`. diffusers: `num_inference_steps`. */
  steps?: number;
  /** Classifier-free guidance scale; ≤ 1 disables guidance (one UNet pass per step). Defaults to `7.5`. diffusers: `guidance_scale`. */
  guidanceScale?: number;
  /** DDIM η in [0, 1]: 0 is deterministic DDIM, 1 adds DDPM's posterior noise. Defaults to `0`. diffusers: `eta`. */
  eta?: number;
  /** Seed of the initial noise (and η-noise). Defaults to a random seed, reported in the result. */
  seed?: number | bigint;
  /** Image width in pixels, a multiple of 8 × vaeScaleFactor. Defaults to the model's size. */
  width?: number;
  /** Image height in pixels, a multiple of 8 × vaeScaleFactor. Defaults to the model's size. */
  height?: number;
  /** Images per prompt. Defaults to `1`. */
  batchSize?: number;
}

/** @internal */
export function randomSeed(): bigint {
  return randomBytes(8).readBigUInt64LE() >> 1n;
}

/** @internal The body of model.generate(). */
export async function textToImage(model: StableDiffusionModel, prompt: string, options: TextToImageOptions = {}): Promise<GenerationResult> {
  const d = model.defaults.textToImage;
  const steps = integerIn('steps', options.steps ?? d.steps, 1, model.config.scheduler.numTrainTimesteps);
  const guidanceScale = numberIn('guidanceScale', options.guidanceScale ?? d.guidanceScale, 0, 1000);
  const eta = numberIn('eta', options.eta ?? d.eta, 0, 1);
  const seed = options.seed === undefined ? randomSeed() : seedOption('seed', options.seed);
  const width = options.width ?? model.imageSize;
  const height = options.height ?? model.imageSize;
  checkImageSize(width, height, model.sizeMultiple);
  const batchSize = integerIn('batchSize', options.batchSize ?? 1, 1, 64);
  if (typeof prompt !== 'string') throw new TypeError('prompt must be a string');
  const negativePrompt = options.negativePrompt ?? d.negativePrompt;

  const context = await model.encodePrompt(Array(batchSize).fill(prompt));
  const unconditional = await model.encodePrompt(negativePrompt);
  const scale = model.config.vaeScaleFactor;
  const handle = model.native;
  try {
    const latents = Tensor.fromNative(await runJob((onProgress) => native().pipelines.textToImage(handle, context.native, unconditional.native, {
      steps, guidanceScale, eta, seed, latentHeight: height / scale, latentWidth: width / scale,
    }, onProgress), options));
    using decoded = await model.decodeLatents(latents, { signal: options.signal });
    return GenerationResult.create(await toImages(decoded), latents, seed);
  } finally {
    context.dispose();
    unconditional.dispose();
  }
}
