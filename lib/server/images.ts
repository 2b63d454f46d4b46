/**
 * Checking an uploaded image before it is stored: its header is read with sharp under
 * `limitInputPixels`, so an image declaring more pixels than the limit (a decompression bomb) is
 * 413 before a single pixel is decoded; then it is decoded once, so a corrupt file is 400
 * `ERR_IMAGE_READ` at upload, not later in a job.
 */
import sharp, { type Metadata } from 'sharp';
import { TorchEditError } from '../errors.js';
import { HttpError } from './errors.js';

/** The formats accepted, by sharp's name, with their media types. */
export const IMAGE_TYPES: Record<string, string> = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp' };

export interface CheckedImage {
  format: string;
  width: number;
  height: number;
}

export async function checkUpload(bytes: Buffer, maxPixels: number): Promise<CheckedImage> {
  if (bytes.length === 0) throw new TorchEditError('ERR_IMAGE_READ', 'Cannot read image from input: the body is empty');
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw new TorchEditError('ERR_IMAGE_READ', `Cannot read image from input: ${(error as Error).message}`);
  }
  if (meta.format === undefined || !(meta.format in IMAGE_TYPES)) {
    throw new TorchEditError(
      'ERR_IMAGE_READ',
      `Cannot read image from input: expected PNG, JPEG or WebP but got ${meta.format ?? 'unknown data'}`,
    );
  }
  const { width = 0, height = 0 } = meta;
  if (width * height > maxPixels) {
    throw new HttpError(413, 'ERR_TOO_LARGE', `The image declares ${width}×${height} pixels, more than the limit of ${maxPixels}`);
  }
  try {
    // Decodes every pixel (no output kept): truncated or corrupt data fails here.
    await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error' }).stats();
  } catch (error) {
    throw new TorchEditError('ERR_IMAGE_READ', `Cannot read image from input: ${(error as Error).message}`);
  }
  return { format: meta.format, width, height };
}

/** Re-encodes a stored PNG as `format` (`png` is returned as it is). */
export async function encodeAs(png: Buffer, format: 'png' | 'jpeg' | 'webp'): Promise<Buffer> {
  if (format === 'png') return png;
  const image = sharp(png);
  return format === 'jpeg' ? image.jpeg({ quality: 92 }).toBuffer() : image.webp({ quality: 92 }).toBuffer();
}
