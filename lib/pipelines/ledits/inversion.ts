/**
 * An inversion: everything an edit replays (x_0, the x_t it sampled, the noise maps z_t,
 * timesteps, the prompt states) and its settings. Invert once, edit many times: edits only read
 * these tensors. Saved as safetensors (docs/bundle-format.md "Artifacts"), readable from Python.
 */
import { NativeHandle } from '../../handle.js';
import { readArtifact, setting, writeArtifact, type ArtifactKind, type SettingsCheck } from '../../io/artifact.js';
import { fromTensor, toTensor, type RawTensor } from '../../io/safetensors.js';
import type { StableDiffusionModel } from '../../model/model.js';
import type { Scheduler } from '../../options/schema.js';
import type { Tensor } from '../../tensor.js';
import { edit, type EditOptions } from './edit.js';
import type { EditResult } from './editResult.js';

export interface InversionTensors {
  /** VAE latents of the input × scalingFactor, `[1, C, h, w]`. */
  x0: Tensor;
  /** Timesteps in sampling order (largest first), int64 `[T]`. */
  timesteps: Tensor;
  /** The noisy latents at each timestep, `[T, 1, C, h, w]`. */
  xts: Tensor;
  /** The noise map of each step, `[T, 1, C, h, w]`; `zs[T−1]` is z_1 (kept, so reconstruction is exact). */
  zs: Tensor;
  /** Text states of the empty prompt, `[1, L, D]`. */
  unconditional: Tensor;
  /** Text states of the source prompt, or null when there was none. */
  source: Tensor | null;
}

export interface InversionSettings {
  /** The sampler that made the inversion and replays it (files saved before it existed: `'ddpm'`). */
  scheduler: Scheduler;
  sourcePrompt: string;
  sourceGuidanceScale: number;
  /** Inverted (and replayed) timesteps. */
  steps: number;
  /** The schedule had int(steps·(1 + skipNoisiest)) steps, its last `steps` inverted (older files: 0). */
  skipNoisiest: number;
  eta: number;
  /** The seed, as a decimal string (seeds may exceed 2^53). */
  seed: string;
  width: number;
  height: number;
}

const KIND: ArtifactKind = { format: 'torchedit-inversion', version: '1', what: 'inversion' };

export class Inversion extends NativeHandle {
  readonly model: StableDiffusionModel;
  readonly tensors: InversionTensors;
  readonly settings: InversionSettings;
  /** Fingerprint of the model that made it (lib/model/fingerprint.ts). */
  readonly fingerprint: string;

  private constructor(model: StableDiffusionModel, init: Pick<Inversion, 'tensors' | 'settings' | 'fingerprint'>) {
    super('inversion');
    this.model = model;
    this.tensors = init.tensors;
    this.settings = init.settings;
    this.fingerprint = init.fingerprint;
  }

  /** @internal Made by model.invert() and loadInversion(). */
  static create(model: StableDiffusionModel, init: Pick<Inversion, 'tensors' | 'settings' | 'fingerprint'>): Inversion {
    return new Inversion(model, init);
  }

  /** Edits the inverted image (see {@link EditOptions}); the inversion is left unchanged. */
  async edit(options: EditOptions = {}): Promise<EditResult> {
    this.assertLive();
    return edit(this, options);
  }

  /** Writes the inversion as safetensors with its settings and the model fingerprint as metadata. */
  async save(path: string): Promise<void> {
    const t = this.tensors;
    const tensors = new Map<string, RawTensor>();
    for (const [name, tensor] of [
      ['x0', t.x0],
      ['timesteps', t.timesteps],
      ['xts', t.xts],
      ['zs', t.zs],
      ['uncond_embeddings', t.unconditional],
      ['source_embeddings', t.source],
    ] as const) {
      if (tensor) tensors.set(name, await fromTensor(tensor));
    }
    await writeArtifact(path, KIND, tensors, this.settings, this.model, this.fingerprint);
  }

  /** @internal Frees the inversion's tensors. */
  protected override release(): void {
    for (const t of Object.values(this.tensors)) (t as Tensor | null)?.dispose();
  }
}

/** The settings an inversion file records, as model.invert() writes them (older files lack scheduler and skipNoisiest). */
function inversionSettings(model: StableDiffusionModel): SettingsCheck<InversionSettings> {
  return (s, fail) => {
    const scheduler = s.scheduler ?? 'ddpm';
    if (scheduler !== 'ddpm' && scheduler !== 'dpmsolver++') fail('scheduler', "'ddpm' or 'dpmsolver++'");
    return {
      scheduler: scheduler as Scheduler,
      sourcePrompt: setting.string(s, 'sourcePrompt', fail),
      sourceGuidanceScale: setting.number(s, 'sourceGuidanceScale', fail, 0, 1000),
      steps: setting.integer(s, 'steps', fail, 1, model.config.scheduler.numTrainTimesteps),
      skipNoisiest: s.skipNoisiest === undefined ? 0 : setting.number(s, 'skipNoisiest', fail, 0, 0.999999),
      eta: setting.number(s, 'eta', fail, Number.MIN_VALUE, 1),
      seed: setting.seed(s, fail),
      ...setting.size(s, fail, model),
    };
  };
}

/**
 * Reads an inversion saved by {@link Inversion.save}; refuses a file made with another model
 * (ERR_MODEL_MISMATCH), not an inversion, or whose settings or tensors are not what it records
 * (ERR_FILE_FORMAT).
 */
export async function loadInversion(path: string, model: StableDiffusionModel): Promise<Inversion> {
  const file = await readArtifact(path, KIND, model, inversionSettings(model));
  const { steps, width, height } = file.settings;
  const { latentChannels: C, vaeScaleFactor: f } = model.config;
  const { maxLength: L, hiddenSize: D } = model.config.textEncoder;
  const latents = [1, C, height / f, width / f];
  const float = (...shape: number[]) => ({ dtype: 'float32' as const, shape });
  const specs = {
    x0: float(...latents),
    timesteps: { dtype: 'int64' as const, shape: [steps] },
    xts: float(steps, ...latents),
    zs: float(steps, ...latents),
    uncond_embeddings: float(1, L, D),
  };
  for (const [name, spec] of Object.entries(specs)) file.tensor(name, spec); // every check before any allocation
  const source = file.optional('source_embeddings', float(1, L, D));
  const need = (name: keyof typeof specs) => toTensor(file.tensor(name, specs[name]));
  return Inversion.create(model, {
    tensors: {
      x0: need('x0'),
      timesteps: need('timesteps'),
      xts: need('xts'),
      zs: need('zs'),
      unconditional: need('uncond_embeddings'),
      source: source ? toTensor(source) : null,
    },
    settings: file.settings,
    fingerprint: file.fingerprint,
  });
}
