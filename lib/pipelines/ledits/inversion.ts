/**
 * An inversion: everything an edit replays (x_0, the x_t it sampled, the noise maps z_t,
 * timesteps, the prompt states) and its settings. Invert once, edit many times: edits only read
 * these tensors. Saved as safetensors (docs/bundle-format.md "Artifacts"), readable from Python.
 */
import { NativeHandle } from '../../handle.js';
import { readArtifact, writeArtifact, type ArtifactKind } from '../../io/artifact.js';
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

/** Reads an inversion saved by {@link Inversion.save}; refuses a file made with another model or not an inversion. */
export async function loadInversion(path: string, model: StableDiffusionModel): Promise<Inversion> {
  const file = await readArtifact<InversionSettings>(path, KIND, model);
  const need = (name: string) => toTensor(file.tensor(name));
  const source = file.optional('source_embeddings');
  return Inversion.create(model, {
    tensors: {
      x0: need('x0'),
      timesteps: need('timesteps'),
      xts: need('xts'),
      zs: need('zs'),
      unconditional: need('uncond_embeddings'),
      source: source ? toTensor(source) : null,
    },
    // Saved before the scheduler was recorded: edit-friendly DDPM over its whole schedule.
    settings: { ...file.settings, scheduler: file.settings.scheduler ?? 'ddpm', skipNoisiest: file.settings.skipNoisiest ?? 0 },
    fingerprint: file.fingerprint,
  });
}
