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
import { selectParameters } from './parameters.js';
import { ImagicResult } from './result.js';

export interface ImagicStageOptions {
  /** Adam steps, ≥ 1. */
  steps?: number;
  /** Adam learning rate, > 0. */
  lr?: number;
}

/**
 * The UNet parameters stage B trains: `'all'`, `'attention'` (every `attn1` and `attn2`),
 * `'cross-attention'` (`attn2`, attention to the text), or name patterns matched against the
 * TorchScript UNet's parameter names (`model.modules().unet.parameterNames`): a dotted part such
 * as `'attn2.to_k'`, or a glob with `*`. See lib/pipelines/imagic/parameters.ts.
 */
export type FinetuneParameters = 'all' | 'attention' | 'cross-attention' | string[];

export interface ImagicFinetuneOptions extends ImagicStageOptions {
  /**
   * Which parameters are trained; the others are shared with the loaded model, not copied, and
   * only the trained ones are saved. A selection matching none is ERR_INVALID_OPTION. Defaults to `'all'`.
   */
  parameters?: FinetuneParameters;
}

export interface ImagicOptions extends JobOptions {
  /** Stage A, the text-embedding optimisation (UNet frozen). Defaults to `{ steps: 1000, lr: 2e-3 }` (paper). */
  embedding?: ImagicStageOptions;
  /** Stage B, the UNet fine-tune (embedding frozen). Defaults to `{ steps: 1500, lr: 5e-7, parameters: 'all' }` (paper). */
  finetune?: ImagicFinetuneOptions;
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

  const trained = selectParameters(unetParameterNames(model), finetune.parameters);

  const x0 = await model.encodeImage(image, { width, height, resize, signal: options.signal });
  const target = await orDispose(() => model.encodePrompt(prompt), x0);
  try {
    const handle = model.native;
    const out = await runJob(
      (onProgress) =>
        native().pipelines.imagicTrain(
          handle,
          x0.native,
          target.native,
          { embedding, finetune: { steps: finetune.steps, lr: finetune.lr, parameters: trained }, seed },
          onProgress,
        ),
      options,
    );
    const parts = {
      targetEmbedding: Tensor.fromNative(out.targetEmbedding),
      optimizedEmbedding: Tensor.fromNative(out.optimizedEmbedding),
      unet: Module.fromNative(out.unet),
    };
    return ImagicResult.create(model, {
      ...parts,
      trainedParameters: trained,
      inputLatents: x0,
      losses: { embedding: Array.from(out.embeddingLosses), finetune: Array.from(out.finetuneLosses) },
      settings: {
        targetPrompt: prompt,
        embedding,
        finetune,
        ...imageRunSettings(model, x0, seed),
      },
      fingerprint: await orDispose(model.fingerprint(), parts.targetEmbedding, parts.optimizedEmbedding, parts.unet),
    });
  } catch (error) {
    x0.dispose(); // on success the result owns it (chooseEta's distance to the input)
    throw error;
  } finally {
    target.dispose();
  }
}

/** @internal The loaded UNet's parameter names, in its order. */
export function unetParameterNames(model: StableDiffusionModel): string[] {
  const modules = model.modules();
  try {
    return modules.unet.parameterNames;
  } finally {
    for (const m of Object.values(modules)) m.dispose();
  }
}
