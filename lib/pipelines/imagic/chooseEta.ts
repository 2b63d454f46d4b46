/**
 * Imagic's automatic η. The paper (arXiv:2210.09276 §4.3, Fig. 7) leaves η per image to the user,
 * who sweeps it by eye; here one sweep over a grid is scored and the best candidate is returned.
 *
 * The built-in criterion is measured with the fine-tuned model itself (native/core/edit/imagic_eta.h):
 * the text gain — how much lower the denoising loss of the generated latents is under e_tgt than
 * under e_opt, over a few fixed (t, ε) pairs (> 0: the edit is visible to the model) — traded
 * off against the distance to the input's latents (fidelity). Both are normalised by their largest
 * magnitude over the grid: score = gain/max|gain| − fidelity·distance/max distance. Ties go to the
 * smaller η (the paper's preference: the least change that makes the edit).
 */
import { TorchEditError } from '../../errors.js';
import { imagicChooseEtaDefaults } from '../../options/defaults.js';
import { contextOf, validateImagicChooseEtaOptions, validateImagicSweepOptions } from '../../options/resolve.js';
import { Tensor } from '../../tensor.js';
import type { GenerationResult } from '../result.js';
import type { ImagicGenerateOptions, ImagicResult } from './result.js';

/** A caller's criterion: a score of one candidate image (higher is better). */
export type ImagicEtaScorer = (candidate: GenerationResult, eta: number) => number | Promise<number>;

/** Settings of the built-in criterion (defaults: lib/options/schema.ts, group imagicChooseEta). */
export interface ImagicModelCriterion {
  /** Weight of the (normalised) distance to the input's latents against the (normalised) text gain, ≥ 0. Defaults to `0.5`. */
  fidelity?: number;
  /** (t, ε) pairs the denoising losses are averaged over, 1–1000. Defaults to `8`. */
  pairs?: number;
}

export interface ImagicChooseEtaOptions extends Omit<ImagicGenerateOptions, 'eta'> {
  /** The η grid, each in [-10, 10] (a model.json may recommend its own). Defaults to `[0.5, 0.6, 0.7, 0.8, 0.9, 1]`. */
  etas?: number[];
  /**
   * How candidates are scored: a function of each candidate image (higher is better), or the
   * built-in criterion's settings. The seed (`seed`) fixes both the sampler's noise and the
   * built-in criterion's (t, ε) pairs, so the choice is reproducible. Defaults to `{ fidelity: 0.5, pairs: 8 }`, the built-in criterion.
   */
  criterion?: ImagicEtaScorer | ImagicModelCriterion;
}

export interface ImagicEtaCandidate {
  eta: number;
  /** The criterion's score (the chosen candidate has the highest). */
  score: number;
  /** Built-in criterion: mean denoising loss under e_opt minus under e_tgt. */
  gain?: number;
  /** Built-in criterion: mean squared distance of the latents to the input's. */
  distance?: number;
}

export interface ImagicEtaChoice {
  eta: number;
  /** The chosen candidate's image (the caller disposes it). */
  image: GenerationResult;
  /** Every candidate, in the grid's order. */
  candidates: ImagicEtaCandidate[];
}

/** The library's η grid (lib/options/schema.ts; a model's own is `model.defaults.imagicChooseEta.etas`). */
export const DEFAULT_ETA_GRID: readonly number[] = imagicChooseEtaDefaults.etas;

/** Scores [N, 2] (gain, distance) of candidates `[N, C, h, w]` for the input `x0`, over `pairs` draws of `seed`. */
export type ModelScores = (candidates: Tensor, x0: Tensor, pairs: number, seed: bigint) => Promise<Tensor>;

/** The built-in criterion's score of each candidate from its gain and distance (see the file's comment). */
export function modelCriterionScores(gains: number[], distances: number[], fidelity: number): number[] {
  const maxGain = Math.max(...gains.map(Math.abs));
  const maxDistance = Math.max(...distances);
  return gains.map((g, i) => (maxGain > 0 ? g / maxGain : 0) - fidelity * (maxDistance > 0 ? distances[i] / maxDistance : 0));
}

/** The index of the highest score; ties go to the smaller η. */
export function bestIndex(scores: number[], etas: number[]): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) {
    if (scores[i] > scores[best] || (scores[i] === scores[best] && etas[i] < etas[best])) best = i;
  }
  return best;
}

/** The built-in criterion's settings, or the caller's scorer, validated (defaults from the model's). */
type Criterion = { kind: 'model'; fidelity: number; pairs: number } | { kind: 'function'; scorer: ImagicEtaScorer };

function parseCriterion(result: ImagicResult, options: Pick<ImagicChooseEtaOptions, 'criterion' | 'etas'>): Criterion & { etas: number[] } {
  const { etas, criterion } = validateImagicChooseEtaOptions(options, contextOf(result.model));
  if (typeof criterion === 'function') return { kind: 'function', scorer: criterion as ImagicEtaScorer, etas };
  if (!result.inputLatents) {
    throw new TorchEditError(
      'ERR_UNSUPPORTED',
      "This Imagic result was saved without its input's latents (an older save): pass a criterion function to chooseEta",
    );
  }
  return { kind: 'model', ...criterion, etas };
}

/**
 * @internal Scores candidate images already made at `etas` (one sweep with `seed`) by the
 * criterion of `options`. chooseEta's scoring without its sweep: the evaluation (eval/imagicEta.ts)
 * scores a part of a larger sweep with it.
 */
export async function scoreCandidates(
  result: ImagicResult,
  images: readonly GenerationResult[],
  etas: readonly number[],
  seed: bigint,
  options: Pick<ImagicChooseEtaOptions, 'criterion'>,
  modelScores: ModelScores,
): Promise<ImagicEtaCandidate[]> {
  const criterion = parseCriterion(result, options);
  if (criterion.kind === 'function') {
    const candidates: ImagicEtaCandidate[] = [];
    for (const [i, image] of images.entries()) {
      const score = await criterion.scorer(image, etas[i]);
      if (typeof score !== 'number' || Number.isNaN(score)) {
        throw new TorchEditError('ERR_INVALID_OPTION', `criterion returned ${String(score)} for η ${etas[i]}; expected a number`, {
          option: 'criterion',
        });
      }
      candidates.push({ eta: etas[i], score });
    }
    return candidates;
  }
  const latents = await Promise.all(images.map(async (image) => (await image.latents.data()) as Float32Array));
  const [, c, h, w] = images[0].latents.shape;
  const stacked = new Float32Array(latents.length * latents[0].length);
  latents.forEach((l, i) => stacked.set(l, i * l.length));
  using batch = Tensor.from(stacked, [latents.length, c, h, w]);
  using scores = await modelScores(batch, result.inputLatents!, criterion.pairs, seed);
  const values = (await scores.data()) as Float64Array;
  const gains = etas.map((_, i) => values[2 * i]);
  const distances = etas.map((_, i) => values[2 * i + 1]);
  const combined = modelCriterionScores(gains, distances, criterion.fidelity);
  return etas.map((eta, i) => ({ eta, score: combined[i], gain: gains[i], distance: distances[i] }));
}

/** @internal The body of ImagicResult.chooseEta; `modelScores` runs the native scoring job. */
export async function chooseByCriterion(
  result: ImagicResult,
  options: ImagicChooseEtaOptions,
  modelScores: ModelScores,
): Promise<ImagicEtaChoice> {
  // Before the sweep: a bad criterion or grid fails fast. The grid is also checked as sweep's etas.
  const { etas: grid } = parseCriterion(result, options);
  const { etas, seed } = validateImagicSweepOptions({ ...options, etas: grid }, contextOf(result.model));
  const images = await result.sweep({ ...options, etas, seed });
  try {
    const candidates = await scoreCandidates(result, images, etas, seed, options, modelScores);
    const best = bestIndex(
      candidates.map((c) => c.score),
      etas,
    );
    const image = images[best];
    images.splice(best, 1);
    return { eta: etas[best], image, candidates };
  } finally {
    for (const other of images) other.dispose();
  }
}
