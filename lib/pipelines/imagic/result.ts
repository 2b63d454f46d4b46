/**
 * A trained Imagic edit: e_tgt, e_opt and the fine-tuned UNet. Generate at any η, sweep several,
 * choose η automatically, save and reload without retraining.
 *
 * Saved as one safetensors file (format version 2): the embeddings, the input's latents, the
 * losses and the trained UNet parameters only (their new values; everything else is the loaded
 * model's), with the settings and the model fingerprint. Version 1 folders (imagic.safetensors +
 * a whole TorchScript unet.pt) still load.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { native } from '../../binding.js';
import { TorchEditError } from '../../errors.js';
import { checkImageSize } from '../../image/read.js';
import { NativeHandle } from '../../handle.js';
import { readArtifact, setting, writeArtifact, type ArtifactKind, type SettingsCheck } from '../../io/artifact.js';
import { fromTensor, toTensor, type RawTensor } from '../../io/safetensors.js';
import { runJob, type JobOptions } from '../../jobs.js';
import type { StableDiffusionModel } from '../../model/model.js';
import type { Device } from '../../device.js';
import { loadModule, type Module } from '../../module.js';
import { contextOf, validateImagicGenerateOptions, validateImagicSweepOptions } from '../../options/resolve.js';
import { Tensor } from '../../tensor.js';
import { type GenerationResult, sampleAndDecode } from '../result.js';
import { chooseByCriterion, type ImagicChooseEtaOptions, type ImagicEtaChoice, type ModelScores } from './chooseEta.js';
import type { FinetuneParameters } from './train.js';

export interface ImagicSettings {
  targetPrompt: string;
  embedding: { steps: number; lr: number };
  /** `parameters` is absent in results saved before subset training (they trained `'all'`). */
  finetune: { steps: number; lr: number; parameters?: FinetuneParameters };
  /** Decimal string: seeds may exceed 2^53. */
  seed: string;
  width: number;
  height: number;
}

export interface ImagicGenerateOptions extends JobOptions {
  /** η: 1 is the target text, 0 the embedding optimised to the image, > 1 extrapolates. Defaults to `0.7`. diffusers community: `alpha`. */
  eta?: number;
  /** Seed of the sampler's initial noise. Defaults to a random seed. */
  seed?: number | bigint;
  /** DDIM steps. Defaults to `50`. */
  steps?: number;
  /** Classifier-free guidance scale ("" as unconditional). Defaults to `7.5`. */
  guidanceScale?: number;
}

/** Version 2 holds the trained parameters as `unet.<name>`; version 1 a whole unet.pt beside it. */
const KIND: ArtifactKind = { format: 'torchedit-imagic', version: '2', reads: ['1'], what: 'Imagic result' };
const FILE = 'imagic.safetensors';
const LEGACY_UNET = 'unet.pt';
const PARAMETER_PREFIX = 'unet.';

type ImagicResultParts = Pick<
  ImagicResult,
  'targetEmbedding' | 'optimizedEmbedding' | 'unet' | 'trainedParameters' | 'inputLatents' | 'losses' | 'settings' | 'fingerprint'
>;

export class ImagicResult extends NativeHandle {
  readonly model: StableDiffusionModel;
  /** e_tgt: the target prompt's text states `[1, L, D]`. */
  readonly targetEmbedding: Tensor;
  /** e_opt: the embedding optimised in stage A `[1, L, D]`. */
  readonly optimizedEmbedding: Tensor;
  /** The fine-tuned UNet (stage B): its trained parameters, the rest shared with the model's UNet, which is unchanged. */
  readonly unet: Module;
  /** The dotted names of the UNet parameters stage B trained (what `save` writes). */
  readonly trainedParameters: readonly string[];
  /** The input image's latents `[1, C, h, w]` (null for results saved before they were kept). */
  readonly inputLatents: Tensor | null;
  /** Loss of every training step of each stage. */
  readonly losses: { embedding: number[]; finetune: number[] };
  readonly settings: ImagicSettings;
  readonly fingerprint: string;

  private constructor(model: StableDiffusionModel, init: ImagicResultParts) {
    super('Imagic result');
    this.model = model;
    this.targetEmbedding = init.targetEmbedding;
    this.optimizedEmbedding = init.optimizedEmbedding;
    this.unet = init.unet;
    this.trainedParameters = init.trainedParameters;
    this.inputLatents = init.inputLatents;
    this.losses = init.losses;
    this.settings = init.settings;
    this.fingerprint = init.fingerprint;
  }

  /** @internal Made by model.imagic() and loadImagic(). */
  static create(model: StableDiffusionModel, init: ImagicResultParts): ImagicResult {
    return new ImagicResult(model, init);
  }

  /** Samples with ē = η·e_tgt + (1−η)·e_opt and the fine-tuned UNet (stage C). */
  async generate(options: ImagicGenerateOptions = {}): Promise<GenerationResult> {
    this.assertLive();
    const { eta, ...rest } = validateImagicGenerateOptions(options, contextOf(this.model));
    return (await this.sweep({ ...options, ...rest, etas: [eta] }))[0];
  }

  /** One image per η with the same seed, reusing the fine-tuned UNet and the prompt states. */
  async sweep(options: Omit<ImagicGenerateOptions, 'eta'> & { etas: number[] }): Promise<GenerationResult[]> {
    this.assertLive();
    const { etas, steps, guidanceScale, seed } = validateImagicSweepOptions(options, contextOf(this.model));
    const { width, height } = this.settings;
    checkImageSize(width, height, this.model.sizeMultiple);
    const scale = this.model.config.vaeScaleFactor;
    const unconditional = await this.model.encodePrompt('');
    const results: GenerationResult[] = [];
    try {
      for (const eta of etas) {
        results.push(
          await sampleAndDecode(this.model, options, seed, (handle, onProgress) =>
            native().pipelines.imagicGenerate(
              handle,
              this.unet.native,
              this.targetEmbedding.native,
              this.optimizedEmbedding.native,
              unconditional.native,
              { eta, sampling: { steps, guidanceScale, eta: 0, seed, latentHeight: height / scale, latentWidth: width / scale } },
              onProgress,
            ),
          ),
        );
      }
      return results;
    } catch (error) {
      for (const r of results) r.dispose(); // a later η failed or was aborted: the earlier ones are the caller's no more
      throw error;
    } finally {
      unconditional.dispose();
    }
  }

  /**
   * Generates one image per η of a grid (one sweep: same seed, the UNet and prompt states reused)
   * and picks η by a measured criterion: by default the model's own (chooseEta.ts), or the
   * caller's scorer of each candidate image. Returns the chosen η, its image and every
   * candidate's scores; the other candidates' images are freed.
   */
  async chooseEta(options: ImagicChooseEtaOptions = {}): Promise<ImagicEtaChoice> {
    this.assertLive();
    return chooseByCriterion(this, options, this.modelEtaScores(options));
  }

  /**
   * @internal The built-in criterion's native job: (gain, distance) `[N, 2]` of candidate latents
   * `[N, C, h, w]` against the input's `x0`, over `pairs` (t, ε) draws of `seed`.
   */
  modelEtaScores(options: JobOptions = {}): ModelScores {
    return (candidates, x0, pairs, seed) =>
      runJob(
        (onProgress) =>
          native().pipelines.imagicEtaScores(
            this.model.native,
            this.unet.native,
            this.targetEmbedding.native,
            this.optimizedEmbedding.native,
            candidates.native,
            x0.native,
            { pairs, seed },
            onProgress,
          ),
        options,
      ).then(Tensor.fromNative);
  }

  /**
   * Writes `dir/imagic.safetensors`: e_tgt, e_opt, the input's latents, the losses and the
   * trained UNet parameters (as `unet.<name>`), with the settings and the model fingerprint.
   * An older save's unet.pt in `dir` is removed.
   */
  async save(dir: string, options: JobOptions = {}): Promise<void> {
    this.assertLive();
    await mkdir(dir, { recursive: true });
    const losses = (values: number[]): RawTensor => ({ dtype: 'float32', shape: [values.length], data: Float32Array.from(values) });
    const tensors = new Map<string, RawTensor>([
      ['target_embedding', await fromTensor(this.targetEmbedding)],
      ['optimized_embedding', await fromTensor(this.optimizedEmbedding)],
      ['embedding_losses', losses(this.losses.embedding)],
      ['finetune_losses', losses(this.losses.finetune)],
    ]);
    if (this.inputLatents) tensors.set('input_latents', await fromTensor(this.inputLatents));
    const trained = await this.unet.parameters({ ...options, names: this.trainedParameters });
    for (const name of this.trainedParameters) {
      const t = trained.get(name)!;
      tensors.set(PARAMETER_PREFIX + name, await fromTensor(t));
      t.dispose();
    }
    await writeArtifact(join(dir, FILE), KIND, tensors, this.settings, this.model, this.fingerprint);
    await rm(join(dir, LEGACY_UNET), { force: true });
  }

  /** @internal Frees the fine-tuned UNet and the embeddings. */
  protected override release(): void {
    this.unet.dispose();
    this.targetEmbedding.dispose();
    this.optimizedEmbedding.dispose();
    this.inputLatents?.dispose();
  }
}

/** The settings an Imagic file records, as model.imagic() writes them. */
function imagicSettings(model: StableDiffusionModel): SettingsCheck<ImagicSettings> {
  return (s, fail) => {
    const stage = (field: 'embedding' | 'finetune') => {
      const v = s[field] as Record<string, unknown> | undefined;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(field, '{ steps, lr }');
      const inner = (name: string, expected: string): never => fail(field, `${expected} for ${name}`);
      return { steps: setting.integer(v, 'steps', inner, 1, 1_000_000), lr: setting.number(v, 'lr', inner, Number.MIN_VALUE, 1) };
    };
    const finetune: ImagicSettings['finetune'] = stage('finetune');
    // Absent in results saved before subset training (they trained 'all').
    const parameters = (s.finetune as Record<string, unknown>).parameters;
    if (parameters !== undefined) {
      const named = ['all', 'attention', 'cross-attention'].includes(parameters as string);
      const list = Array.isArray(parameters) && parameters.length > 0 && parameters.every((p) => typeof p === 'string');
      if (!named && !list) fail('finetune', "'all', 'attention', 'cross-attention' or a list of name patterns for parameters");
      finetune.parameters = parameters as FinetuneParameters;
    }
    return {
      targetPrompt: setting.string(s, 'targetPrompt', fail),
      embedding: stage('embedding'),
      finetune,
      seed: setting.seed(s, fail),
      ...setting.size(s, fail, model),
    };
  };
}

/**
 * Reloads a saved Imagic result for `model`: the trained parameters over the model's own UNet
 * (or, for a version 1 folder, its unet.pt). ERR_MODEL_MISMATCH for a result made with another
 * model; ERR_FILE_FORMAT for a folder that is not one, a file damaged or modified since saving,
 * or settings and tensors that are not what it records.
 */
export async function loadImagic(dir: string, model: StableDiffusionModel): Promise<ImagicResult> {
  const file = await readArtifact(join(dir, FILE), KIND, model, imagicSettings(model));
  const { maxLength: L, hiddenSize: D } = model.config.textEncoder;
  const embedding = { dtype: 'float32' as const, shape: [1, L, D] };
  const floats = (name: string, steps: number) => Array.from(file.tensor(name, { dtype: 'float32', shape: [steps] }).data as Float32Array);
  const losses = {
    embedding: floats('embedding_losses', file.settings.embedding.steps),
    finetune: floats('finetune_losses', file.settings.finetune.steps),
  };
  const parts = {
    targetEmbedding: file.tensor('target_embedding', embedding),
    optimizedEmbedding: file.tensor('optimized_embedding', embedding),
  };
  let unet: Module;
  let trainedParameters: string[];
  if (file.version === '1') {
    unet = await loadModule(join(dir, LEGACY_UNET), { device: model.device as Device });
    trainedParameters = unet.parameterNames;
  } else {
    trainedParameters = file.names.filter((n) => n.startsWith(PARAMETER_PREFIX)).map((n) => n.slice(PARAMETER_PREFIX.length));
    if (trainedParameters.length === 0) {
      throw new TorchEditError('ERR_FILE_FORMAT', `${join(dir, FILE)} holds no trained UNet parameters`);
    }
    // Shapes and dtypes are checked against the UNet's own parameters (ERR_MODEL_MISMATCH), natively.
    const parameters = new Map(trainedParameters.map((name) => [name, toTensor(file.tensor(PARAMETER_PREFIX + name))]));
    const modules = model.modules();
    try {
      unet = await modules.unet.withParameters(parameters);
    } finally {
      for (const m of Object.values(modules)) m.dispose();
      for (const t of parameters.values()) t.dispose();
    }
  }
  const { width, height } = file.settings;
  const f = model.config.vaeScaleFactor;
  const input = file.optional('input_latents', { dtype: 'float32', shape: [1, model.config.latentChannels, height / f, width / f] });
  return ImagicResult.create(model, {
    targetEmbedding: toTensor(parts.targetEmbedding),
    optimizedEmbedding: toTensor(parts.optimizedEmbedding),
    unet,
    trainedParameters,
    inputLatents: input ? toTensor(input) : null,
    losses,
    settings: file.settings,
    fingerprint: file.fingerprint,
  });
}
