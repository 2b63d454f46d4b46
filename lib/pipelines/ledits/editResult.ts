/** What an edit returns: the image and latents of any generation, and the concepts' masks when asked for. */
import { TorchEditError } from '../../errors.js';
import { ImageResult } from '../../image/write.js';
import type { Tensor } from '../../tensor.js';
import { GenerationResult } from '../result.js';

export class EditResult extends GenerationResult {
  /**
   * With `returnMasks`: the mask each concept applied at each replayed step, averaged over the
   * latent channels, `[steps, concepts, h, w]` in [0, 1] (zeros while a concept warms up or after
   * its cooldown); else null. {@link EditResult.maskImages} draws them.
   */
  readonly masks: Tensor | null;

  private constructor(images: ImageResult[], latents: Tensor, seed: bigint, masks: Tensor | null) {
    super(images, latents, seed);
    this.masks = masks;
  }

  /** @internal Made by inversion.edit(). */
  static override create(images: ImageResult[], latents: Tensor, seed: bigint, masks: Tensor | null = null): EditResult {
    return new EditResult(images, latents, seed, masks);
  }

  /**
   * One picture per concept: its mask averaged over the steps it applied in, drawn in red over the
   * edited image (opacity = the mask's value). Needs `returnMasks: true`.
   */
  async maskImages(): Promise<ImageResult[]> {
    this.assertLive();
    if (!this.masks) throw new TorchEditError('ERR_INVALID_ARGUMENT', 'maskImages() needs an edit made with returnMasks: true');
    const [steps, concepts, h, w] = this.masks.shape;
    const data = (await this.masks.data()) as Float32Array;
    const image = this.image;
    const { width, height } = image;
    const rgb = image.raw();
    return Array.from({ length: concepts }, (_, c) => {
      // Mean over the steps in which the concept applied (a step with an all-zero mask did not).
      const mean = new Float32Array(h * w);
      let active = 0;
      for (let s = 0; s < steps; s++) {
        const offset = (s * concepts + c) * h * w;
        let any = false;
        for (let i = 0; i < h * w; i++) any ||= data[offset + i] > 0;
        if (!any) continue;
        active++;
        for (let i = 0; i < h * w; i++) mean[i] += data[offset + i];
      }
      const out = new Uint8Array(width * height * 3);
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const m = active ? mean[Math.floor((y * h) / height) * w + Math.floor((x * w) / width)] / active : 0;
          const p = (y * width + x) * 3;
          out[p] = Math.round(rgb[p] * (1 - m) + 255 * m);
          out[p + 1] = Math.round(rgb[p + 1] * (1 - m));
          out[p + 2] = Math.round(rgb[p + 2] * (1 - m));
        }
      }
      return ImageResult.fromRgb(out, width, height);
    });
  }

  /** @internal Frees the latents and the masks. */
  protected override release(): void {
    super.release();
    this.masks?.dispose();
  }
}
