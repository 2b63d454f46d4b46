/**
 * Imagic stages A and B (arXiv:2210.09276): optimise the target text's embedding towards the
 * image, then fine-tune a copy of the UNet on it. Both loops run natively with autograd and Adam
 * (native/core/edit/imagic_trainer.cc); only progress crosses into JavaScript.
 */
import { orDispose } from '../../handle.js';
import { native } from '../../binding.js';
import type { ImageInput, ResizeMode } from '../../image/read.js';
import { imageRunSettings } from '../../io/artifact.js';
import { runJob, type JobOptions } from '../../jobs.js';
import type { StableDiffusionModel } from '../../model/model.js';
import { Module } from '../../module.js';
import { contextOf, validateImagicOptions } from '../../options/resolve.js';
import { nonEmptyString } from '../../options/validate.js';
import { Tensor } from '../../tensor.js';
import { ImagicResult } from './result.js';

export interface ImagicStageOptions {
  /** Adam steps, ≥ 1. */
  steps?: number;
  /** Adam learning rate, > 0. */
  lr?: number;
}

export interface ImagicOptions extends JobOptions {
  /** Stage A, the text-embedding optimisation (UNet frozen). Defaults to `{ steps: 1000, lr: 2e-3 }` (paper). */
  embedding?: ImagicStageOptions;
  /** Stage B, the UNet fine-tune (embedding frozen). Defaults to `{ steps: 1500, lr: 5e-7 }` (paper). */
  finetune?: ImagicStageOptions;
  /** Seed of the timestep and noise draws of both stages. Defaults to a random seed. */
  seed?: number | bigint;
  /** Image width in pixels (multiple of 8 × vaeScaleFactor). Defaults to the model's size. */
  width?: number;
  /** Image height in pixels (multiple of 8 × vaeScaleFactor). Defaults to the model's size. */
  height?: number;
  /** How the image is fitted: `'cover'`, `'contain'` or `'fill'`. Defaults to `'cover'`. */
  resize?: ResizeMode;
}

/** @internal The body of model.imagic(). */
export async function imagic(
  model: StableDiffusionModel,
  image: ImageInput | Tensor,
  targetPrompt: string,
  options: ImagicOptions = {},
): Promise<ImagicResult> {
  const prompt = nonEmptyString('targetPrompt', targetPrompt);
  const { embedding, finetune, seed, width, height, resize } = validateImagicOptions(options, contextOf(model));

  const x0 = await model.encodeImage(image, { width, height, resize, signal: options.signal });
  const target = await orDispose(() => model.encodePrompt(prompt), x0);
  try {
    const handle = model.native;
    const out = await runJob(
      (onProgress) => native().pipelines.imagicTrain(handle, x0.native, target.native, { embedding, finetune, seed }, onProgress),
      options,
    );
    const parts = {
      targetEmbedding: Tensor.fromNative(out.targetEmbedding),
      optimizedEmbedding: Tensor.fromNative(out.optimizedEmbedding),
      unet: Module.fromNative(out.unet),
    };
    return ImagicResult.create(model, {
      ...parts,
      losses: { embedding: Array.from(out.embeddingLosses), finetune: Array.from(out.finetuneLosses) },
      settings: {
        targetPrompt: prompt,
        embedding,
        finetune,
        ...imageRunSettings(model, x0, seed),
      },
      fingerprint: await orDispose(model.fingerprint(), parts.targetEmbedding, parts.optimizedEmbedding, parts.unet),
    });
  } finally {
    x0.dispose();
    target.dispose();
  }
}
