/**
 * LEDITS step 1: edit-friendly DDPM inversion of an image (arXiv:2304.06140). The loop runs
 * natively in one job (native/core/edit/ddpm_inversion.cc); this file validates and packages.
 */
import { native } from '../../binding.js';
import type { ImageInput, ResizeMode } from '../../image/read.js';
import { imageRunSettings } from '../../io/artifact.js';
import { runJob, type JobOptions } from '../../jobs.js';
import type { StableDiffusionModel } from '../../model/model.js';
import { contextOf, validateInvertOptions } from '../../options/resolve.js';
import { Tensor } from '../../tensor.js';
import { Inversion } from './inversion.js';

export interface InvertOptions extends JobOptions {
  /** A prompt describing the input image; guides the inversion (s_src). Defaults to `''` (none). diffusers LEDITS++: `source_prompt`. */
  sourcePrompt?: string;
  /** CFG scale of the source prompt during inversion; ignored without one. Defaults to `3.5`. diffusers LEDITS++: `source_guidance_scale`. */
  sourceGuidanceScale?: number;
  /** Inversion steps T (every edit replays up to T − skip of them). Defaults to `100`. diffusers LEDITS++: `num_inversion_steps`. */
  steps?: number;
  /** η of the DDPM posterior, in (0, 1]; 1 is the method's choice. Defaults to `1`. */
  eta?: number;
  /** Seed of the independent noise draws; the same seed gives a bit-identical inversion. Defaults to a random seed. */
  seed?: number | bigint;
  /** Image width in pixels (multiple of 8 × vaeScaleFactor). Defaults to the model's size. */
  width?: number;
  /** Image height in pixels (multiple of 8 × vaeScaleFactor). Defaults to the model's size. */
  height?: number;
  /** How the image is fitted: `'cover'`, `'contain'` or `'fill'`. Defaults to `'cover'`. */
  resize?: ResizeMode;
}

/** @internal The body of model.invert(). */
export async function invert(model: StableDiffusionModel, image: ImageInput | Tensor, options: InvertOptions = {}): Promise<Inversion> {
  const { sourcePrompt, sourceGuidanceScale, steps, eta, seed, width, height, resize } = validateInvertOptions(options, contextOf(model));

  const x0 = await model.encodeImage(image, { width, height, resize, signal: options.signal });
  const unconditional = await model.encodePrompt('');
  const source = sourcePrompt === '' ? null : await model.encodePrompt(sourcePrompt);
  const handle = model.native;
  try {
    const [timesteps, xts, zs] = await runJob(
      (onProgress) =>
        native().pipelines.invert(
          handle,
          x0.native,
          unconditional.native,
          source?.native ?? null,
          { steps, eta, sourceGuidanceScale, seed },
          onProgress,
        ),
      options,
    );
    return Inversion.create(model, {
      tensors: {
        x0,
        timesteps: Tensor.fromNative(timesteps),
        xts: Tensor.fromNative(xts),
        zs: Tensor.fromNative(zs),
        unconditional,
        source,
      },
      settings: {
        sourcePrompt,
        sourceGuidanceScale,
        steps,
        eta,
        ...imageRunSettings(model, x0, seed),
      },
      fingerprint: await model.fingerprint(),
    });
  } catch (error) {
    for (const t of [x0, unconditional, source]) t?.dispose();
    throw error;
  }
}
