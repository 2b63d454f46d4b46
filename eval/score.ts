/**
 * Scoring through scripts/tinysd/analyze.py's stable CLI: one Python call per measure, on a .npy
 * batch (and a reference batch for the pairwise fields), then the aggregates.
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

/** What an edit case asked for: the input's attributes and the wanted colour. */
export interface EditCase {
  shape: string;
  color: string;
  bg: string;
  newColor: string;
}

/** The strict success: new colour, same shape, same background, centroid moved < 4 px. */
export function strictSuccess(a: Analysis, c: EditCase): boolean {
  const shift = a.centroid_shift;
  return a.found && a.color === c.newColor && a.shape === c.shape && a.bg === c.bg && typeof shift === 'number' && shift < 4;
}

export interface EditScore {
  n: number;
  /** Share of strict successes. */
  strict: number;
  /** Share with the new colour (whatever else happened). */
  colour: number;
  sameShape: number;
  sameBg: number;
  /** Median centroid shift in px (a picture without a shape counts as an infinite shift). */
  medianShift: number;
  /** Mean PSNR of the background outside both shapes (dB), over pictures where it is defined. */
  bgPsnr: number;
  /** Mean whole-picture PSNR against the input (dB). */
  psnr: number;
  /** Per-case strict success, in case order. */
  ok: boolean[];
}

export function scoreEdits(rows: Analysis[], cases: EditCase[]): EditScore {
  const n = rows.length;
  const ok = rows.map((r, k) => strictSuccess(r, cases[k]));
  const share = (f: (r: Analysis, k: number) => boolean) => rows.filter(f).length / Math.max(n, 1);
  return {
    n,
    strict: share((_, k) => ok[k]),
    colour: share((r, k) => r.color === cases[k].newColor),
    sameShape: share((r, k) => r.shape === cases[k].shape),
    sameBg: share((r, k) => r.bg === cases[k].bg),
    medianShift: median(rows.map((r) => (typeof r.centroid_shift === 'number' ? r.centroid_shift : Infinity))),
    bgPsnr: mean(rows.map((r) => r.bg_psnr).filter((v): v is number => typeof v === 'number')),
    psnr: mean(rows.map((r) => r.psnr).filter((v): v is number => typeof v === 'number')),
    ok,
  };
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

/** Orders edit scores: more strict successes, then smaller median shift, then higher background PSNR. */
export function betterEdit(a: EditScore, b: EditScore): boolean {
  if (a.strict !== b.strict) return a.strict > b.strict;
  if (a.medianShift !== b.medianShift) return a.medianShift < b.medianShift;
  return a.bgPsnr > b.bgPsnr;
}
