/**
 * Minimal .npy (format 1.0) reading and writing for uint8 image batches [N, H, W, 3], the format
 * eval/make_heldout.py writes and scripts/tinysd/analyze.py reads. Images travel between Python
 * and Node this way (and as torchedit Tensors), not as PNG files, so the evaluation's process never
 * runs sharp after the addon is loaded (see eval/run.ts, "Why .npy").
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** A batch of 8-bit RGB images, interleaved (HWC), N × H × W × 3 bytes. */
export interface ImageBatch {
  n: number;
  height: number;
  width: number;
  data: Uint8Array;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

export function readNpyImages(path: string): ImageBatch {
  const buf = readFileSync(path);
  if (!buf.subarray(0, 6).equals(MAGIC)) throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const headerLength = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.subarray(start, start + headerLength).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/
    .exec(header)?.[1]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (descr !== '|u1' || fortran !== 'False' || !shape || shape.length !== 4 || shape[3] !== 3) {
    throw new Error(`${path}: expected a C-order uint8 array [N, H, W, 3], found ${header.trim()}`);
  }
  const [n, height, width] = shape;
  const data = new Uint8Array(buf.buffer, buf.byteOffset + start + headerLength, n * height * width * 3);
  return { n, height, width, data: data.slice() };
}

export function writeNpyImages(path: string, images: Uint8Array[], height: number, width: number): void {
  const size = height * width * 3;
  for (const [i, img] of images.entries()) {
    if (img.length !== size) throw new Error(`image ${i}: ${img.length} bytes, expected ${height}×${width}×3`);
  }
  let header = `{'descr': '|u1', 'fortran_order': False, 'shape': (${images.length}, ${height}, ${width}, 3), }`;
  const total = 10 + header.length + 1;
  header += `${' '.repeat((64 - (total % 64)) % 64)}\n`;
  const head = Buffer.alloc(10);
  MAGIC.copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  writeFileSync(
    path,
    Buffer.concat([head, Buffer.from(header, 'latin1'), ...images.map((img) => Buffer.from(img.buffer, img.byteOffset, img.byteLength))]),
  );
}

/** Image k of a batch as its own HWC byte array. */
export function imageAt(batch: ImageBatch, k: number): Uint8Array {
  const size = batch.height * batch.width * 3;
  return batch.data.slice(k * size, (k + 1) * size);
}
