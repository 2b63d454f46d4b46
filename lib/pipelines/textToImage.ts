/**
 * Text-to-image: DDIM sampling with classifier-free guidance. The loop runs natively in one job
 * (native/core/pipelines/text_to_image.cc); this file validates options and decodes the result.
 */
import { invalidOption } from '../errors.js';
import { native } from '../binding.js';
import { orDispose } from '../handle.js';
import type { JobOptions } from '../jobs.js';
import type { StableDiffusionModel } from '../model/model.js';
import { contextOf, validateTextToImageOptions } from '../options/resolve.js';
import { type GenerationResult, sampleAndDecode } from './result.js';

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

/** @internal The body of model.generate(). */
export async function textToImage(
  model: StableDiffusionModel,
  prompt: string,
  options: TextToImageOptions = {},
): Promise<GenerationResult> {
  const { negativePrompt, steps, guidanceScale, eta, seed, width, height, batchSize } = validateTextToImageOptions(
    options,
    contextOf(model),
  );
  if (typeof prompt !== 'string') throw invalidOption('prompt', 'string', prompt);

  const context = await model.encodePrompt(Array(batchSize).fill(prompt));
  const unconditional = await orDispose(model.encodePrompt(negativePrompt), context);
  const scale = model.config.vaeScaleFactor;
  try {
    return await sampleAndDecode(model, options, seed, (handle, onProgress) =>
      native().pipelines.textToImage(
        handle,
        context.native,
        unconditional.native,
        { steps, guidanceScale, eta, seed, latentHeight: height / scale, latentWidth: width / scale },
        onProgress,
      ),
    );
  } finally {
    context.dispose();
    unconditional.dispose();
  }
}
