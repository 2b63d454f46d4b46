/**
 * LEDITS step 1: edit-friendly inversion of an image (arXiv:2304.06140), with the DDPM step or
 * LEDITS++'s SDE-DPM-Solver++(2M) (arXiv:2311.16711). The loop runs natively in one job
 * (native/core/edit/ddpm_inversion.cc); this file validates and packages.
 */
import { orDispose } from '../../handle.js';
import { native } from '../../binding.js';
import type { ImageInput, ResizeMode } from '../../image/read.js';
import type { Scheduler } from '../../options/schema.js';
import { imageRunSettings } from '../../io/artifact.js';
import { runJob, type JobOptions } from '../../jobs.js';
import type { StableDiffusionModel } from '../../model/model.js';
import { contextOf, validateInvertOptions } from '../../options/resolve.js';
import { Tensor } from '../../tensor.js';
import { Inversion } from './inversion.js';

export interface InvertOptions extends JobOptions {
  /**
   * The sampler the inversion is made with, and every edit of it replayed by: `'ddpm'`
   * (edit-friendly DDPM, arXiv:2304.06140) or `'dpmsolver++'` (LEDITS++'s edit-friendly
   * SDE-DPM-Solver++(2M), good with fewer steps). `'dpmsolver++'` also makes LEDITS++'s settings
   * the defaults: 50 steps, `skipNoisiest` 0.15, and for its edits `skip` 0, no momentum, the
   * `'sum'` mask and concepts at scale 5, warm-up 0, threshold 0.9. Defaults to `'ddpm'`.
   */
  scheduler?: Scheduler;
  /** A prompt describing the input image; guides the inversion (s_src). Defaults to `''` (none). diffusers LEDITS++: `source_prompt`. */
  sourcePrompt?: string;
  /** CFG scale of the source prompt during inversion; ignored without one. Defaults to `3.5`. diffusers LEDITS++: `source_guidance_scale`. */
  sourceGuidanceScale?: number;
  /** Inversion steps T (every edit replays up to T − skip of them). Defaults to `100` (`50` with `'dpmsolver++'`). diffusers LEDITS++: `num_inversion_steps`. */
  steps?: number;
  /**
   * LEDITS++'s skip, decided at inversion time: a fraction f in [0, 1). The schedule has
   * int(steps·(1 + f)) steps and only its last `steps` (the least noisy) are inverted, and all
   * of them replayed by an edit. More means weaker edits and more fidelity. Unlike an edit's
   * `skip`, the skipped steps are never computed. Defaults to `0` (`0.15` with `'dpmsolver++'`).
   * diffusers LEDITS++: `skip` of `invert`.
   */
  skipNoisiest?: number;
  /** η of the DDPM posterior, in (0, 1]; 1 is the method's choice (`'dpmsolver++'` accepts only 1). Defaults to `1`. */
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
  const { scheduler, sourcePrompt, sourceGuidanceScale, steps, skipNoisiest, eta, seed, width, height, resize } = validateInvertOptions(
    options,
    contextOf(model),
  );

  const x0 = await model.encodeImage(image, { width, height, resize, signal: options.signal });
  const unconditional = await orDispose(() => model.encodePrompt(''), x0);
  const source = sourcePrompt === '' ? null : await orDispose(() => model.encodePrompt(sourcePrompt), x0, unconditional);
  try {
    const handle = model.native;
    const [timesteps, xts, zs] = await runJob(
      (onProgress) =>
        native().pipelines.invert(
          handle,
          x0.native,
          unconditional.native,
          source?.native ?? null,
          { scheduler, steps, skipNoisiest, eta, sourceGuidanceScale, seed },
          onProgress,
        ),
      options,
    );
    const made = { timesteps: Tensor.fromNative(timesteps), xts: Tensor.fromNative(xts), zs: Tensor.fromNative(zs) };
    const fingerprint = await orDispose(model.fingerprint(), made.timesteps, made.xts, made.zs);
    return Inversion.create(model, {
      tensors: {
        x0,
        ...made,
        unconditional,
        source,
      },
      settings: {
        scheduler,
        sourcePrompt,
        sourceGuidanceScale,
        steps,
        skipNoisiest,
        eta,
        ...imageRunSettings(model, x0, seed),
      },
      fingerprint,
    });
  } catch (error) {
    for (const t of [x0, unconditional, source]) t?.dispose();
    throw error;
  }
}
