/** The result every generating pipeline returns: the decoded image and the latents it came from. */
import type { NativeJob, NativeModel, NativeProgressCallback, NativeTensor } from '../binding.js';
import { NativeHandle } from '../handle.js';
import { ImageResult } from '../image/write.js';
import { runJob, type JobOptions } from '../jobs.js';
import type { StableDiffusionModel } from '../model/model.js';
import { Tensor } from '../tensor.js';

export class GenerationResult extends NativeHandle {
  /** The decoded image (first of the batch for `image`; all of them in `images`). */
  readonly images: ImageResult[];
  /** Final latents `[B, C, h, w]`, scaled as the VAE decoder's input (× scalingFactor). */
  readonly latents: Tensor;
  /** The seed that was used (drawn at random when none was given), to reproduce the result. */
  readonly seed: bigint;

  protected constructor(images: ImageResult[], latents: Tensor, seed: bigint) {
    super('result');
    this.images = images;
    this.latents = latents;
    this.seed = seed;
  }

  /** @internal Made by the pipelines. */
  static create(images: ImageResult[], latents: Tensor, seed: bigint): GenerationResult {
    return new GenerationResult(images, latents, seed);
  }

  get image(): ImageResult {
    return this.images[0];
  }

  /** Writes the first image; the format follows the extension (.png, .jpg, .webp). */
  toFile(path: string): Promise<void> {
    return this.image.toFile(path);
  }

  /** @internal Frees the latents; the images are JavaScript memory and stay usable. */
  protected override release(): void {
    this.latents.dispose();
  }
}

/**
 * @internal The end of every generating pipeline: starts the native sampling job with the model's
 * handle (wired to the options' signal and onProgress), decodes the latents it returns and
 * packages them with `seed`.
 */
export async function sampleAndDecode(
  model: StableDiffusionModel,
  options: JobOptions,
  seed: bigint,
  start: (handle: NativeModel, onProgress: NativeProgressCallback | undefined) => NativeJob<NativeTensor>,
): Promise<GenerationResult> {
  const handle = model.native;
  const latents = Tensor.fromNative(await runJob((onProgress) => start(handle, onProgress), options));
  try {
    return GenerationResult.create(await decodeImages(model, latents, options), latents, seed);
  } catch (error) {
    latents.dispose(); // aborted or failed while decoding: nothing else holds them (the soak test found this)
    throw error;
  }
}

/** @internal Decodes latents `[B, C, h, w]` into one ImageResult per batch entry. */
export async function decodeImages(model: StableDiffusionModel, latents: Tensor, options: JobOptions): Promise<ImageResult[]> {
  using decoded = await model.decodeLatents(latents, { signal: options.signal });
  return toImages(decoded);
}

/** @internal Splits decoded images `[B, 3, H, W]` (float32, about [-1, 1]) into one ImageResult each. */
export async function toImages(decoded: Tensor): Promise<ImageResult[]> {
  const [batch, , height, width] = decoded.shape;
  const data = (await decoded.data()) as Float32Array;
  const size = 3 * height * width;
  return Array.from({ length: batch }, (_, i) => new ImageResult({ data: data.subarray(i * size, (i + 1) * size), width, height }));
}
