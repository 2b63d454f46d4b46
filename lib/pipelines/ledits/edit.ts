/**
 * LEDITS step 2: replay an inversion's noise maps while guiding with a target prompt and/or SEGA
 * concepts (arXiv:2307.00522, SEGA arXiv:2301.12247). The loop and the guidance recursion run
 * natively (native/core/edit/ledits.cc, semantic_guidance.cc); this file validates and packages.
 */
import { native } from '../../binding.js';
import { TorchEditError, invalidOption } from '../../errors.js';
import { readMask, type ImageInput } from '../../image/read.js';
import { orDispose } from '../../handle.js';
import { runJob, type JobOptions } from '../../jobs.js';
import { contextOf, validateEditOptions } from '../../options/resolve.js';
import { Tensor } from '../../tensor.js';
import { decodeImages } from '../result.js';
import { EditResult } from './editResult.js';
import type { Inversion } from './inversion.js';

/** One SEGA edit concept. */
export interface EditConcept {
  /** What to add (or, with `remove`, take away), e.g. `'blue'`. Required, non-empty. */
  prompt: string;
  /** Guidance scale s_c ≥ 0. Defaults to `7` (`5` for a `'dpmsolver++'` inversion). diffusers: `edit_guidance_scale`. */
  scale?: number;
  /** Guide away from the concept instead of towards it. Defaults to `false`. diffusers: `reverse_editing_direction`. */
  remove?: boolean;
  /** Edit steps before the concept applies (counted from the first replayed step). Defaults to `2` (`0` for a `'dpmsolver++'` inversion). diffusers: `edit_warmup_steps`. */
  warmup?: number;
  /** Edit step from which the concept stops applying. Defaults to never. diffusers: `edit_cooldown_steps`. */
  cooldown?: number;
  /** Share λ in [0, 1) of the guidance entries masked out (smallest first). Defaults to `0.95` (`0.9` for a `'dpmsolver++'` inversion). diffusers: `edit_threshold`. */
  threshold?: number;
  /** Relative weight w_c ≥ 0 among concepts. Defaults to `1`. diffusers: `edit_weights`. */
  weight?: number;
  /** This concept's implicit mask (see {@link EditOptions.implicitMask}). Defaults to the edit's `implicitMask`. */
  implicitMask?: ImplicitMaskMode;
}

/**
 * LEDITS++'s implicit masks (arXiv:2311.16711 §3.3): `'off'` keeps SEGA's noise mask M² (the
 * concept's `threshold` over its guidance magnitude); `'attention'` uses M¹ alone, where the UNet's
 * cross-attention to the concept's words is in its top 1 − threshold; `'intersect'` uses M¹ ∩ M².
 */
export type ImplicitMaskMode = 'off' | 'attention' | 'intersect';

/** A user mask: an image (white = editable) or a tensor in [0, 1] at the latent size. */
export type MaskInput = ImageInput | Tensor;

export interface EditOptions extends JobOptions {
  /** A prompt describing the wanted image. Defaults to `''`: none, a concepts-only edit. */
  targetPrompt?: string;
  /** CFG scale of the target prompt. Defaults to `15`. */
  guidanceScale?: number;
  /**
   * Inversion steps not replayed, decided at edit time: the edit starts from the inversion's
   * noisy latent after `skip` steps. An integer count (as the DDPM-inversion demo: `36` of 100),
   * or a fraction in (0, 1) of the inversion's steps. The inversion keeps every step, so one
   * inversion serves edits with any skip (LEDITS++'s skip, which drops the noisiest steps before
   * inverting, is the inversion's `skipNoisiest`). Less skip = stronger edits, less fidelity.
   * Defaults to `0.36` of the inversion's steps: 36 for the default 100 (`0` for a
   * `'dpmsolver++'` inversion, which LEDITS++ replays whole).
   */
  skip?: number;
  /** SEGA concepts, each added or removed. Defaults to none. */
  concepts?: EditConcept[];
  /** Momentum scale s_m of SEGA's guidance. Defaults to `0.3` (`0` for a `'dpmsolver++'` inversion: LEDITS++ has none). diffusers: `edit_momentum_scale`. */
  momentumScale?: number;
  /** Momentum β in [0, 1). Defaults to `0.6`. diffusers: `edit_mom_beta`. */
  momentumBeta?: number;
  /** How λ masks: `'channel'` (SEGA: quantile per channel) or `'sum'` (LEDITS++: over the channel-summed magnitude). Defaults to `'channel'` (`'sum'` for a `'dpmsolver++'` inversion). */
  maskMode?: 'channel' | 'sum';
  /**
   * LEDITS++'s implicit mask of every concept (a concept's own `implicitMask` wins): `'off'`,
   * `'attention'` or `'intersect'`. The last two need a bundle with cross-attention maps
   * (`ERR_NO_ATTENTION_MAPS` otherwise). Defaults to `'off'`. diffusers: `use_cross_attn_mask`, `use_intersect_mask`.
   */
  implicitMask?: ImplicitMaskMode;
  /**
   * Where the edit may act: an image (path, Buffer or sharp; white = editable, resized like the
   * input to the latent size) or a tensor `[h, w]` / `[1, 1, h, w]` in [0, 1] at the latent size.
   * Outside it the edit follows the inversion exactly, so the result there is the reconstruction.
   * Defaults to none. diffusers: `user_mask`.
   */
  userMask?: MaskInput;
  /** Keep the mask each concept applied at each step in the result's `masks`. Defaults to `false`. */
  returnMasks?: boolean;
}

/** @internal The body of inversion.edit(); the CLI calls it to validate options before inverting. */
export async function edit(inversion: Inversion, options: EditOptions = {}): Promise<EditResult> {
  const { scheduler, steps, skipNoisiest, eta } = inversion.settings;
  const model = inversion.model;
  const resolved = validateEditOptions(options, contextOf(model, { inversionSteps: steps }, scheduler));
  const { targetPrompt, guidanceScale, skip, momentumScale, momentumBeta, maskMode, returnMasks } = resolved;
  const concepts = resolved.concepts.map((c, i) => {
    const implicitMask = c.implicitMask ?? resolved.implicitMask;
    const tokenCount = Math.min(model.tokenizer.tokenize(c.prompt).length, model.config.textEncoder.maxLength - 2);
    if (implicitMask !== 'off') {
      if (!model.config.crossAttentionMaps) {
        throw new TorchEditError(
          'ERR_NO_ATTENTION_MAPS',
          `implicitMask '${implicitMask}' needs the UNet's cross-attention maps, and ${model.config.name} (model.json) declares none: re-export the bundle with crossAttentionMaps, or use implicitMask 'off'`,
          { option: `concepts[${i}].implicitMask` },
        );
      }
      if (tokenCount === 0) throw invalidOption(`concepts[${i}].prompt`, 'a prompt with at least one token', c.prompt);
    }
    return { ...c, implicitMask, tokenCount };
  });

  const t = inversion.tensors;
  const [, , h, w] = t.x0.shape;
  const target = targetPrompt === '' ? null : await model.encodePrompt(targetPrompt);
  const conceptStates = concepts.length === 0 ? null : await orDispose(() => model.encodePrompt(concepts.map((c) => c.prompt)), target);
  const userMask = resolved.userMask === null ? null : await orDispose(() => maskTensor(resolved.userMask!, h, w), target, conceptStates);
  try {
    const [latents, masks] = await runJob(
      (onProgress) =>
        native().pipelines.edit(
          model.native,
          t.x0.native,
          t.timesteps.native,
          t.xts.native,
          t.zs.native,
          t.unconditional.native,
          target?.native ?? null,
          conceptStates?.native ?? null,
          userMask?.native ?? null,
          { scheduler, steps, skipNoisiest, eta, skip, guidanceScale, momentumScale, momentumBeta, maskMode, returnMasks, concepts },
          onProgress,
        ),
      options,
    );
    const latentsTensor = Tensor.fromNative(latents);
    const masksTensor = masks === null ? null : Tensor.fromNative(masks);
    try {
      return EditResult.create(
        await decodeImages(model, latentsTensor, options),
        latentsTensor,
        BigInt(inversion.settings.seed),
        masksTensor,
      );
    } catch (error) {
      latentsTensor.dispose();
      masksTensor?.dispose();
      throw error;
    }
  } finally {
    target?.dispose();
    conceptStates?.dispose();
    if (userMask !== resolved.userMask) userMask?.dispose();
  }
}

/** The user's mask as `[1, 1, h, w]` float32 in [0, 1] at the latent size. */
async function maskTensor(input: MaskInput, h: number, w: number): Promise<Tensor> {
  if (!(input instanceof Tensor)) return Tensor.from(await readMask(input, { width: w, height: h }), [1, 1, h, w]);
  const shape = input.shape;
  const fits = (shape.length === 2 && shape[0] === h && shape[1] === w) || (shape.length === 4 && shape.join() === [1, 1, h, w].join());
  if (!fits)
    throw invalidOption('userMask', `a tensor [${h}, ${w}] or [1, 1, ${h}, ${w}] (the latent size)`, `a tensor [${shape.join(', ')}]`);
  if (input.dtype !== 'float32') throw invalidOption('userMask', 'a float32 tensor', `a ${input.dtype} tensor`);
  return shape.length === 4 ? input : Tensor.from((await input.data()) as Float32Array, [1, 1, h, w]);
}
