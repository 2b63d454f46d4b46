/**
 * Reading photographs into model input: decode, orient and resize with sharp,
 * then convert to a planar float32 [1, 3, H, W] array in [-1, 1].
 *
 * Every decode and resample is done by sharp (libvips); this module only
 * rearranges the resulting bytes.
 */
import sharp, { type Sharp } from 'sharp';
import { TorchEditError } from '../errors.js';
import { notARegularFile } from '../io/regularFile.js';

/**
 * An image to read: a file path, an encoded image in memory (any format sharp
 * decodes: PNG, JPEG, WebP, AVIF, TIFF, GIF, SVG…), or a sharp instance.
 *
 * A sharp instance is cloned, so the caller's instance is left untouched and
 * can still be used afterwards. Operations already set on it that sharp runs
 * before resizing (such as `extract()` or `rotate(90)`) are kept; its resize,
 * flatten, colourspace and output settings are replaced by readImage's.
 */
export type ImageInput = string | Buffer | Uint8Array | Sharp;

/**
 * How the image is brought to the requested size (aspect ratios may differ):
 * - `'cover'`: scale to cover the whole target, then crop the overflow
 *   equally on both sides (centre crop). Nothing is distorted, edges may be lost.
 * - `'contain'`: scale to fit inside the target, then pad equally on both
 *   sides with `background` (letterbox). Nothing is lost or distorted.
 * - `'fill'`: stretch to exactly the target size, ignoring the aspect ratio.
 */
export type ResizeMode = 'cover' | 'contain' | 'fill';

/** An opaque sRGB colour, each channel an integer 0–255. */
export interface RgbColor {
  r: number;
  g: number;
  b: number;
}

export interface ReadImageOptions {
  /** Output width in pixels, a positive integer. Required. */
  width: number;
  /** Output height in pixels, a positive integer. Required. */
  height: number;
  /** How to reconcile differing aspect ratios. Default `'cover'` (centre crop). */
  resize?: ResizeMode;
  /**
   * Colour used for the padding of `'contain'` and underneath transparent
   * pixels (alpha is always flattened onto it). Default black `{ r: 0, g: 0, b: 0 }`,
   * which is -1 in every channel of the output.
   */
  background?: RgbColor;
}

/** A batch of one RGB image, planar (CHW), float32 in [-1, 1]. */
export interface ImageData {
  data: Float32Array;
  shape: [1, 3, number, number];
}

const RESIZE_MODES: readonly ResizeMode[] = ['cover', 'contain', 'fill'];
const BLACK: RgbColor = { r: 0, g: 0, b: 0 };

/**
 * Read an image and convert it to a [1, 3, height, width] float32 array in
 * [-1, 1] (`x / 127.5 - 1` for 8-bit sources), ready for the VAE encoder.
 *
 * The EXIF orientation is applied first, alpha is flattened onto
 * `background`, greyscale is expanded to RGB and colour-managed sources are
 * converted to sRGB. Resampling uses sharp's default Lanczos-3 kernel (as
 * diffusers does with PIL). Sources deeper than 8 bits (16-bit PNG/TIFF) are
 * read at 16-bit precision (`x / 32767.5 - 1`).
 *
 * @throws TorchEditError `ERR_INVALID_OPTION` for invalid options,
 *   `ERR_IMAGE_READ` when the file is missing or the data cannot be decoded.
 */
export async function readImage(input: ImageInput, options: ReadImageOptions): Promise<ImageData> {
  const { width, height, resize = 'cover', background = BLACK } = options ?? {};
  checkPositiveInteger('width', width);
  checkPositiveInteger('height', height);
  if (!RESIZE_MODES.includes(resize)) {
    throw invalidOption(`one of: ${RESIZE_MODES.join(', ')}`, 'resize', resize);
  }
  checkColor(background);

  await checkFile(input, 'image');
  let pixels: Buffer;
  let channels: number;
  let highDepth: boolean;
  try {
    const image = open(input);
    const { depth } = await image.metadata();
    highDepth = depth !== undefined && depth !== 'uchar' && depth !== 'char';
    const result = await image
      .autoOrient()
      .flatten({ background })
      .resize({ width, height, fit: resize, position: 'centre', background: { ...background, alpha: 1 } })
      .removeAlpha()
      .toColourspace(highDepth ? 'rgb16' : 'srgb')
      .raw({ depth: highDepth ? 'ushort' : 'uchar' })
      .toBuffer({ resolveWithObject: true });
    pixels = result.data;
    channels = result.info.channels;
  } catch (error) {
    if (error instanceof TorchEditError) throw error;
    const source = typeof input === 'string' ? `file "${input}"` : 'input';
    throw new TorchEditError('ERR_IMAGE_READ', `Cannot read image from ${source}: ${messageOf(error)}`, {
      cause: error,
    });
  }
  // sharp's raw 16-bit output is native-endian; copy first if the view would be misaligned.
  const aligned = pixels.byteOffset % 2 === 0 ? pixels : new Uint8Array(pixels);
  const samples = highDepth ? new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2) : pixels;
  return {
    data: toPlanar(samples, channels, width * height, highDepth ? 32767.5 : 127.5),
    shape: [1, 3, height, width],
  };
}

/**
 * Read a mask (white = 1, black = 0) as `width × height` float32 values in [0, 1], row-major. The
 * image is oriented, flattened onto black, turned to greyscale and resized with `fit: 'cover'`
 * (how readImage frames an input by default) with a triangle filter, so a region that is all
 * black or all white in the source stays exactly 0 or 1.
 *
 * @throws TorchEditError `ERR_IMAGE_READ` when the file is missing or cannot be decoded.
 */
export async function readMask(input: ImageInput, options: { width: number; height: number }): Promise<Float32Array> {
  const { width, height } = options;
  checkPositiveInteger('width', width);
  checkPositiveInteger('height', height);
  await checkFile(input, 'mask');
  let pixels: Buffer;
  try {
    pixels = await open(input)
      .autoOrient()
      .flatten({ background: BLACK })
      .greyscale()
      .resize({ width, height, fit: 'cover', position: 'centre', kernel: 'linear' })
      .extractChannel(0)
      .raw()
      .toBuffer();
  } catch (error) {
    if (error instanceof TorchEditError) throw error;
    const source = typeof input === 'string' ? `file "${input}"` : 'input';
    throw new TorchEditError('ERR_IMAGE_READ', `Cannot read mask from ${source}: ${messageOf(error)}`, { cause: error });
  }
  return Float32Array.from(pixels, (v) => v / 255);
}

/**
 * Check that a requested output size suits the model: both sides must be
 * positive integers and multiples of `multiple` (8 × vaeScaleFactor, i.e. 64
 * for Stable Diffusion, so the latent is divisible by the UNet's downsampling).
 *
 * @throws TorchEditError `ERR_INVALID_OPTION`, naming the nearest valid sizes.
 */
export function checkImageSize(width: number, height: number, multiple: number): void {
  checkPositiveInteger('multiple', multiple);
  for (const [name, value] of [
    ['width', width],
    ['height', height],
  ] as const) {
    checkPositiveInteger(name, value);
    if (value % multiple !== 0) throw new TorchEditError('ERR_INVALID_OPTION', notAMultipleMessage(name, value, multiple));
  }
}

/** "Expected width to be a multiple of 64 but received 500 (nearest valid: 448 or 512)". */
export function notAMultipleMessage(name: string, value: number, multiple: number): string {
  const below = Math.floor(value / multiple) * multiple;
  const nearest = below === 0 ? `${multiple}` : `${below} or ${below + multiple}`;
  return `Expected ${name} to be a multiple of ${multiple} but received ${value} (nearest valid: ${nearest})`;
}

/** A path must be a regular file: libvips would block on a FIFO or read a device without end. */
async function checkFile(input: ImageInput, what: string): Promise<void> {
  if (typeof input !== 'string') return;
  const bad = await notARegularFile(input);
  if (bad) throw new TorchEditError('ERR_IMAGE_READ', `Cannot read ${what} from file "${input}": ${bad.why}`, { cause: bad.cause });
}

/** A fresh sharp pipeline for the input; never mutates a caller's instance. */
function open(input: ImageInput): Sharp {
  if (typeof input === 'string' || input instanceof Uint8Array) return sharp(input);
  if (isSharp(input)) return input.clone();
  throw invalidOption('a file path, Buffer, Uint8Array or sharp instance', 'input', input);
}

function isSharp(value: unknown): value is Sharp {
  const candidate = value as Partial<Sharp> | null;
  return typeof candidate?.clone === 'function' && typeof candidate.metadata === 'function';
}

/** Interleaved HWC samples (1 or 3 channels) to planar CHW floats in [-1, 1]. */
function toPlanar(samples: ArrayLike<number>, channels: number, area: number, half: number): Float32Array {
  if (channels !== 1 && channels !== 3) {
    throw new TorchEditError('ERR_IMAGE_READ', `Expected 1 or 3 channels after decoding but got ${channels}`);
  }
  const out = new Float32Array(3 * area);
  for (let i = 0; i < area; i++) {
    for (let c = 0; c < 3; c++) {
      out[c * area + i] = samples[channels === 3 ? i * 3 + c : i] / half - 1;
    }
  }
  return out;
}

function checkPositiveInteger(name: string, value: unknown): void {
  if (!Number.isInteger(value) || (value as number) <= 0) {
    throw invalidOption('positive integer', name, value);
  }
}

function checkColor(color: unknown): void {
  const c = color as Partial<RgbColor> | null;
  const ok = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255;
  if (typeof c !== 'object' || c === null || !ok(c.r) || !ok(c.g) || !ok(c.b)) {
    throw invalidOption('{ r, g, b } with integers 0-255', 'background', color);
  }
}

function invalidOption(expected: string, name: string, actual: unknown): TorchEditError {
  return new TorchEditError('ERR_INVALID_OPTION', `Expected ${expected} for ${name} but received ${show(actual)} of type ${typeof actual}`);
}

function show(value: unknown): string {
  if (typeof value !== 'object' || value === null) return String(value);
  try {
    return JSON.stringify(value).slice(0, 80);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
