/**
 * Held-out shapes-64 cases for the evaluation and the default-model test: eval/make_heldout.py
 * renders them with scripts/tinysd/data.py (indices ≥ TEST_START, never trained on), and they
 * reach torchedit as Tensors, not files.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { ImageResult, Tensor } from '../lib/index.js';
import { imageAt, readNpyImages, type ImageBatch } from './npy.js';
import { python, repoRoot } from './score.js';

export interface HeldoutCase {
  file: string;
  index: number;
  shape: string;
  color: string;
  pos: string;
  size: string;
  bg: string;
  cx: number;
  cy: number;
  /** "a <colour> <shape> <on the left|in the middle|on the right> on a <bg> background" */
  caption: string;
  /** A colour other than `color` for colour edits (cycles through the three others). */
  newColor: string;
}

export interface Heldout {
  dir: string;
  offset: number;
  cases: HeldoutCase[];
  images: ImageBatch;
}

/** Cases TEST_START + offset … + offset + n − 1, written to `dir` by eval/make_heldout.py. */
export function makeHeldout(dir: string, n: number, offset: number): Heldout {
  const result = spawnSync(
    python,
    [join(repoRoot, 'eval', 'make_heldout.py'), '--out', dir, '--n', String(n), '--offset', String(offset)],
    { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } },
  );
  if (result.status !== 0) throw new Error(`eval/make_heldout.py failed (${result.status}): ${result.stderr || result.error}`);
  const json = JSON.parse(readFileSync(join(dir, 'heldout.json'), 'utf8')) as { offset: number; cases: HeldoutCase[] };
  const images = readNpyImages(join(dir, 'heldout.npy'));
  if (images.n !== json.cases.length) throw new Error(`${dir}: ${images.n} images for ${json.cases.length} cases`);
  return { dir, offset: json.offset, cases: json.cases, images };
}

/** Case k's picture as a [1, 3, H, W] Tensor in [-1, 1]. */
export function caseTensor(h: Heldout, k: number): Tensor {
  return imageTensor(imageAt(h.images, k), h.images.height, h.images.width);
}

/** HWC bytes → a [1, 3, H, W] float32 Tensor in [-1, 1] (x / 127.5 − 1, as torchedit's readImage does). */
export function imageTensor(rgb: Uint8Array, height: number, width: number): Tensor {
  const area = height * width;
  const planar = new Float32Array(3 * area);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < area; i++) planar[c * area + i] = rgb[i * 3 + c] / 127.5 - 1;
  }
  return Tensor.from(planar, [1, 3, height, width]);
}

/** Decoded images [1, 3, H, W] (about [-1, 1]) → HWC bytes, quantised exactly as ImageResult is. */
export async function tensorImage(decoded: Tensor): Promise<Uint8Array> {
  const [, , height, width] = decoded.shape;
  const data = (await decoded.data()) as Float32Array;
  return new ImageResult({ data: data.subarray(0, 3 * height * width), width, height }).raw();
}

/** The caption with the colour word replaced (the target prompt of a colour edit). */
export function recolour(c: HeldoutCase, colour = c.newColor): string {
  return c.caption.replace(c.color, colour);
}

export const POS_PHRASE: Record<string, string> = { left: 'on the left', center: 'in the middle', right: 'on the right' };
