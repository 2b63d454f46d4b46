/**
 * LEDITS step 2: replay an inversion's noise maps while guiding with a target prompt and/or SEGA
 * concepts (arXiv:2307.00522, SEGA arXiv:2301.12247). The loop and the guidance recursion run
 * natively (native/core/edit/ledits.cc, semantic_guidance.cc); this file validates and packages.
 */
import { native } from '../../binding.js';
import type { JobOptions } from '../../jobs.js';
import { contextOf, validateEditOptions } from '../../options/resolve.js';
import { type GenerationResult, sampleAndDecode } from '../result.js';
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
}

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
}

/** @internal The body of inversion.edit(); the CLI calls it to validate options before inverting. */
export async function edit(inversion: Inversion, options: EditOptions = {}): Promise<GenerationResult> {
  const { scheduler, steps, skipNoisiest, eta } = inversion.settings;
  const {
    targetPrompt,
    guidanceScale,
    skip,
    concepts: parsed,
    momentumScale,
    momentumBeta,
    maskMode,
  } = validateEditOptions(options, contextOf(inversion.model, { inversionSteps: steps }, scheduler));

  const model = inversion.model;
  const target = targetPrompt === '' ? null : await model.encodePrompt(targetPrompt);
  const conceptStates = parsed.length === 0 ? null : await model.encodePrompt(parsed.map((c) => c.prompt));
  const t = inversion.tensors;
  try {
    return await sampleAndDecode(model, options, BigInt(inversion.settings.seed), (handle, onProgress) =>
      native().pipelines.edit(
        handle,
        t.timesteps.native,
        t.xts.native,
        t.zs.native,
        t.unconditional.native,
        target?.native ?? null,
        conceptStates?.native ?? null,
        { scheduler, steps, skipNoisiest, eta, skip, guidanceScale, momentumScale, momentumBeta, maskMode, concepts: parsed },
        onProgress,
      ),
    );
  } finally {
    target?.dispose();
    conceptStates?.dispose();
  }
}
