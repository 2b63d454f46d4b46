/**
 * Model output to pictures: an ImageResult holds one decoded RGB image and
 * encodes it with sharp to PNG, JPEG or WebP, or hands out the raw bytes.
 */
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { TorchEditError } from '../errors.js';

/** Encodings ImageResult can write. */
export type ImageFormat = 'png' | 'jpeg' | 'webp';

export interface EncodeOptions {
  /**
   * JPEG/WebP quality, an integer 1–100. Default sharp's 80. Ignored for PNG,
   * which is always lossless.
   */
  quality?: number;
}

/** Decoded model output: a batch of one image, planar (CHW) float. */
export interface ImageResultInit {
  /** 3 × height × width values, nominally in [-1, 1]; values outside are clamped, NaN becomes 0. */
  data: Float32Array;
  /** Width in pixels, a positive integer. */
  width: number;
  /** Height in pixels, a positive integer. */
  height: number;
}

const EXTENSIONS: Readonly<Record<string, ImageFormat>> = {
  '.png': 'png',
  '.jpg': 'jpeg',
  '.jpeg': 'jpeg',
  '.webp': 'webp',
};

/** One generated image, stored as 8-bit sRGB. */
export class ImageResult {
  readonly #rgb: Uint8Array;
  readonly #width: number;
  readonly #height: number;

  /**
   * Quantise model output the way diffusers does,
   * `round(clamp(x / 2 + 0.5, 0, 1) * 255)` in float32 with ties to even.
   *
   * @throws TorchEditError `ERR_INVALID_OPTION` if the size does not match `data`.
   */
  constructor({ data, width, height }: ImageResultInit) {
    checkSize(width, height, data?.length, 3, 'data');
    const area = width * height;
    const rgb = new Uint8Array(3 * area);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < area; i++) rgb[i * 3 + c] = toByte(data[c * area + i]);
    }
    this.#rgb = rgb;
    this.#width = width;
    this.#height = height;
  }

  /** An ImageResult from interleaved 8-bit RGB (HWC), e.g. to save a preprocessed input. */
  static fromRgb(raw: Uint8Array, width: number, height: number): ImageResult {
    checkSize(width, height, raw?.length, 3, 'raw');
    const area = width * height;
    const data = new Float32Array(3 * area);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < area; i++) data[c * area + i] = raw[i * 3 + c] / 127.5 - 1;
    }
    return new ImageResult({ data, width, height });
  }

  get width(): number {
    return this.#width;
  }

  get height(): number {
    return this.#height;
  }

  /** A copy of the pixels as interleaved RGB (HWC), width × height × 3 bytes. */
  raw(): Uint8Array {
    return this.#rgb.slice();
  }

  /** A new sharp pipeline over the pixels, for any further processing. */
  toSharp(): Sharp {
    return sharp(this.#rgb, { raw: { width: this.#width, height: this.#height, channels: 3 } });
  }

  /** Encode to PNG (default), JPEG or WebP. */
  async toBuffer(format: ImageFormat = 'png', options: EncodeOptions = {}): Promise<Buffer> {
    return this.#encode(format, options).toBuffer();
  }

  /**
   * Encode to a file; the format comes from the extension (case-insensitive):
   * `.png`, `.jpg`/`.jpeg` or `.webp`. Any other extension is ERR_INVALID_OPTION;
   * a failed write (e.g. missing directory) is ERR_IMAGE_WRITE.
   */
  async toFile(file: string, options: EncodeOptions = {}): Promise<void> {
    const extension = path.extname(String(file)).toLowerCase();
    const format = EXTENSIONS[extension];
    if (format === undefined) {
      throw new TorchEditError(
        'ERR_INVALID_OPTION',
        `Expected a file name ending in ${Object.keys(EXTENSIONS).join(', ')} but received "${file}"`,
      );
    }
    const image = this.#encode(format, options);
    try {
      await image.toFile(file);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new TorchEditError('ERR_IMAGE_WRITE', `Cannot write image to "${file}": ${reason}`, { cause: error });
    }
  }

  #encode(format: ImageFormat, { quality }: EncodeOptions): Sharp {
    if (!Object.values(EXTENSIONS).includes(format)) {
      throw new TorchEditError('ERR_INVALID_OPTION', `Expected one of: png, jpeg, webp for format but received ${String(format)}`);
    }
    if (quality !== undefined && (!Number.isInteger(quality) || quality < 1 || quality > 100)) {
      throw new TorchEditError(
        'ERR_INVALID_OPTION',
        `Expected integer between 1 and 100 for quality but received ${String(quality)} of type ${typeof quality}`,
      );
    }
    const image = this.toSharp();
    if (format === 'png') return image.png();
    return format === 'jpeg' ? image.jpeg({ quality }) : image.webp({ quality });
  }
}

/** diffusers' `((x / 2 + 0.5).clamp(0, 1) * 255).round()`, step by step in float32. */
function toByte(x: number): number {
  const unit = Math.min(Math.max(Math.fround(Math.fround(x / 2) + 0.5), 0), 1);
  const scaled = Math.fround(unit * 255);
  const rounded = Math.round(scaled);
  // torch/numpy round half to even; Math.round rounds half up.
  return rounded - scaled === 0.5 && rounded % 2 === 1 ? rounded - 1 : rounded;
}

function checkSize(width: number, height: number, length: number | undefined, channels: number, name: string): void {
  for (const [label, value] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new TorchEditError(
        'ERR_INVALID_OPTION',
        `Expected positive integer for ${label} but received ${String(value)} of type ${typeof value}`,
      );
    }
  }
  if (length !== channels * width * height) {
    throw new TorchEditError(
      'ERR_INVALID_OPTION',
      `Expected ${name} of length ${channels} × ${height} × ${width} = ${channels * width * height} but received ${String(length)}`,
    );
  }
}
