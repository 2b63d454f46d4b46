/**
 * The evaluation's contact sheet: rows of labelled before/after pairs, composed with sharp.
 *
 *   node dist/eval/sheet.js SPEC.json
 *
 * eval/run.ts runs this in a child process that never loads the torchedit addon (see run.ts,
 * "Why .npy"). SPEC: { out, title, rows: [{ label, pairs: [{ before: [npy, k], after: [npy, k],
 * caption, ok? }] }] } with images from .npy batches (eval/npy.ts); a caption's second line (after
 * "\n") says what failed, and is marked ✗ (or ✓) by `ok`.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import sharp, { type OverlayOptions } from 'sharp';
import { imageAt, readNpyImages, type ImageBatch } from './npy.js';

export interface SheetPair {
  before: [string, number];
  after: [string, number];
  caption: string;
  ok?: boolean;
}

export interface SheetSpec {
  out: string;
  title: string;
  rows: { label: string; pairs: SheetPair[] }[];
}

const SCALE = 2;
const GAP = 4; // between the two images of a pair
const PAIR_GAP = 18; // between pairs
const LABEL_W = 250;
const CAPTION_H = 30; // two lines: the case, then what failed (or ✓)
const ROW_GAP = 14;
const TITLE_H = 30;

const escapeXml = (s: string) =>
  s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] as string);

function text(
  x: number,
  y: number,
  lines: string[],
  size: number,
  width: number,
  height: number,
  color = '#000',
  weight = 'normal',
): OverlayOptions {
  const tspans = lines.map((l, i) => `<tspan x="0" dy="${i === 0 ? size : size + 3}">${escapeXml(l)}</tspan>`).join('');
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<text font-family="DejaVu Sans, sans-serif" font-size="${size}" font-weight="${weight}" fill="${color}">${tspans}</text></svg>`;
  return { input: Buffer.from(svg), left: Math.round(x), top: Math.round(y) };
}

/** Splits a label into lines of at most `max` characters at spaces. */
function wrap(label: string, max: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of label.split(' ')) {
    if (line && line.length + 1 + word.length > max) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

export async function buildSheet(spec: SheetSpec): Promise<void> {
  const batches = new Map<string, ImageBatch>();
  const load = (path: string) => {
    let b = batches.get(path);
    if (!b) {
      b = readNpyImages(path);
      batches.set(path, b);
    }
    return b;
  };
  const first = spec.rows.flatMap((r) => r.pairs)[0];
  const size = first ? load(first.before[0]).width : 64;
  const S = size * SCALE;
  const pairW = 2 * S + GAP;
  const maxPairs = Math.max(1, ...spec.rows.map((r) => r.pairs.length));
  const rowH = S + CAPTION_H + ROW_GAP;
  const width = LABEL_W + maxPairs * pairW + (maxPairs - 1) * PAIR_GAP + 10;
  const height = TITLE_H + spec.rows.length * rowH + 6;
  const layers: OverlayOptions[] = [text(8, 6, [spec.title], 15, width - 16, TITLE_H, '#000', 'bold')];
  const tile = async (ref: [string, number]) => {
    const b = load(ref[0]);
    return sharp(imageAt(b, ref[1]), { raw: { width: b.width, height: b.height, channels: 3 } })
      .resize(S, S, { kernel: 'nearest' })
      .png()
      .toBuffer();
  };
  for (const [r, row] of spec.rows.entries()) {
    const top = TITLE_H + r * rowH;
    layers.push(text(8, top + S / 2 - 20, wrap(row.label, 30), 13, LABEL_W - 12, S, '#000', 'bold'));
    for (const [p, pair] of row.pairs.entries()) {
      const left = LABEL_W + p * (pairW + PAIR_GAP);
      layers.push({ input: await tile(pair.before), left, top });
      layers.push({ input: await tile(pair.after), left: left + S + GAP, top });
      const mark = pair.ok === undefined ? '' : pair.ok ? '✓ ' : '✗ ';
      const color = pair.ok === undefined ? '#333' : pair.ok ? '#060' : '#a00';
      const [head, ...rest] = pair.caption.split('\n');
      const lines = [head, ...rest.map((l) => (l.startsWith('✓') || l.startsWith('✗') ? l : mark + l))].map((l) =>
        l.length > 44 ? `${l.slice(0, 43)}…` : l,
      );
      layers.push(text(left, top + S + 1, lines, 10, pairW, CAPTION_H, color));
    }
  }
  await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite(layers)
    .png()
    .toFile(spec.out);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const specPath = process.argv[2];
  if (!specPath) {
    process.stderr.write('usage: node dist/eval/sheet.js SPEC.json\n');
    process.exit(2);
  }
  await buildSheet(JSON.parse(readFileSync(specPath, 'utf8')) as SheetSpec);
}
