/**
 * A trained Imagic edit: e_tgt, e_opt and the fine-tuned UNet. Generate at any η, sweep several,
 * save and reload without retraining (a folder: imagic.safetensors + unet.pt).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { native } from '../../binding.js';
import { checkImageSize } from '../../image/read.js';
import { NativeHandle } from '../../handle.js';
import { readArtifact, setting, writeArtifact, type ArtifactKind, type SettingsCheck } from '../../io/artifact.js';
import { fromTensor, toTensor } from '../../io/safetensors.js';
import type { JobOptions } from '../../jobs.js';
import type { StableDiffusionModel } from '../../model/model.js';
import type { Device } from '../../device.js';
import { loadModule, type Module } from '../../module.js';
import { contextOf, validateImagicGenerateOptions, validateImagicSweepOptions } from '../../options/resolve.js';
import type { Tensor } from '../../tensor.js';
import { type GenerationResult, sampleAndDecode } from '../result.js';

export interface ImagicSettings {
  targetPrompt: string;
  embedding: { steps: number; lr: number };
  finetune: { steps: number; lr: number };
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

const KIND: ArtifactKind = { format: 'torchedit-imagic', version: '1', what: 'Imagic result' };

type ImagicResultParts = Pick<ImagicResult, 'targetEmbedding' | 'optimizedEmbedding' | 'unet' | 'losses' | 'settings' | 'fingerprint'>;

export class ImagicResult extends NativeHandle {
  readonly model: StableDiffusionModel;
  /** e_tgt: the target prompt's text states `[1, L, D]`. */
  readonly targetEmbedding: Tensor;
  /** e_opt: the embedding optimised in stage A `[1, L, D]`. */
  readonly optimizedEmbedding: Tensor;
  /** The fine-tuned UNet (stage B); the model's own UNet is unchanged. */
  readonly unet: Module;
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

  /** Writes `dir/imagic.safetensors` (embeddings, losses, settings, model fingerprint) and `dir/unet.pt`. */
  async save(dir: string): Promise<void> {
    this.assertLive();
    await mkdir(dir, { recursive: true });
    await this.unet.save(join(dir, 'unet.pt'));
    const tensors = new Map([
      ['target_embedding', await fromTensor(this.targetEmbedding)],
      ['optimized_embedding', await fromTensor(this.optimizedEmbedding)],
      [
        'embedding_losses',
        { dtype: 'float32' as const, shape: [this.losses.embedding.length], data: Float32Array.from(this.losses.embedding) },
      ],
      [
        'finetune_losses',
        { dtype: 'float32' as const, shape: [this.losses.finetune.length], data: Float32Array.from(this.losses.finetune) },
      ],
    ]);
    await writeArtifact(join(dir, 'imagic.safetensors'), KIND, tensors, this.settings, this.model, this.fingerprint);
  }

  /** @internal Frees the fine-tuned UNet and the embeddings. */
  protected override release(): void {
    this.unet.dispose();
    this.targetEmbedding.dispose();
    this.optimizedEmbedding.dispose();
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
    return {
      targetPrompt: setting.string(s, 'targetPrompt', fail),
      embedding: stage('embedding'),
      finetune: stage('finetune'),
      seed: setting.seed(s, fail),
      ...setting.size(s, fail, model),
    };
  };
}

/**
 * Reloads a saved Imagic result for `model`; refuses one made with another model (ERR_MODEL_MISMATCH),
 * a folder that is not one, or one whose settings or tensors are not what it records (ERR_FILE_FORMAT).
 */
export async function loadImagic(dir: string, model: StableDiffusionModel): Promise<ImagicResult> {
  const file = await readArtifact(join(dir, 'imagic.safetensors'), KIND, model, imagicSettings(model));
  const { maxLength: L, hiddenSize: D } = model.config.textEncoder;
  const embedding = { dtype: 'float32' as const, shape: [1, L, D] };
  const losses = (name: string, steps: number) => Array.from(file.tensor(name, { dtype: 'float32', shape: [steps] }).data as Float32Array);
  const parts = {
    targetEmbedding: file.tensor('target_embedding', embedding),
    optimizedEmbedding: file.tensor('optimized_embedding', embedding),
    losses: {
      embedding: losses('embedding_losses', file.settings.embedding.steps),
      finetune: losses('finetune_losses', file.settings.finetune.steps),
    },
  };
  const unet = await loadModule(join(dir, 'unet.pt'), { device: model.device as Device });
  return ImagicResult.create(model, {
    targetEmbedding: toTensor(parts.targetEmbedding),
    optimizedEmbedding: toTensor(parts.optimizedEmbedding),
    unet,
    losses: parts.losses,
    settings: file.settings,
    fingerprint: file.fingerprint,
  });
}
