/**
 * Paths and small helpers shared by the evaluation, and `analyzeBatch`: scripts/tinysd/analyze.py's
 * CLI on a .npy batch (used by test/model/defaultModel.test.ts for a quick single-shape check).
 * The strict evaluation does not score with it: its one definition of success is eval/strict.py
 * (see eval/README.md).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeNpyImages } from './npy.js';

/** Compiled to dist/eval/: the repository root is two folders up. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const python = '/usr/bin/python3';
export const analyzeScript = join(repoRoot, 'scripts', 'tinysd', 'analyze.py');

/** One line of analyze.py's output (the compare() fields only with a reference). */
export interface Analysis {
  i: number;
  found: boolean;
  bg: string;
  color: string | null;
  shape: string | null;
  pos: string | null;
  cx: number | null;
  cy: number | null;
  size: string | null;
  color_dist: number | null;
  centroid_shift?: number | null;
  bg_psnr?: number | null;
  psnr?: number | null;
  same_shape?: boolean;
  same_color?: boolean;
  same_bg?: boolean;
  same_pos?: boolean;
}

/**
 * Writes `images` (and `refs`) as `dir/name.npy` (`dir/name.ref.npy`) and runs analyze.py once.
 * analyze.py prints NaN for undefined numbers (no shape found); those come back as null.
 */
export function analyzeBatch(dir: string, name: string, images: Uint8Array[], size: number, refs?: Uint8Array[]): Analysis[] {
  if (images.length === 0) return [];
  const input = join(dir, `${name}.npy`);
  writeNpyImages(input, images, size, size);
  const args = [analyzeScript, input];
  if (refs) {
    if (refs.length !== images.length) throw new Error(`${name}: ${images.length} images but ${refs.length} references`);
    const ref = join(dir, `${name}.ref.npy`);
    writeNpyImages(ref, refs, size, size);
    args.push('--ref', ref);
  }
  const result = spawnSync(python, args, { encoding: 'utf8', maxBuffer: 256 << 20, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  if (result.status !== 0) throw new Error(`analyze.py failed on ${name} (${result.status}): ${result.stderr || result.error}`);
  const rows = result.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{"i"'))
    .map((l) => JSON.parse(l.replace(/\bNaN\b/g, 'null').replace(/-?\bInfinity\b/g, 'null')) as Analysis);
  if (rows.length !== images.length) throw new Error(`analyze.py returned ${rows.length} rows for ${images.length} images (${name})`);
  return rows;
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function mean(values: number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}
