/**
 * The Imagic η grid of the imagic-eta section (README's Imagic section shows a copy): per row one
 * input and its sweep over η, chooseEta's choice boxed, each result marked ✓ (strict success) or ✗.
 *
 *   node dist/eval/etaGrid.js SPEC.json
 *
 * Run by eval/run.ts in a child process without the torchedit addon, as eval/sheet.ts (see run.ts,
 * "Why .npy"). Labels are an SVG overlay composited with sharp.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import sharp, { type OverlayOptions } from 'sharp';
import { imageAt, readNpyImages, type ImageBatch } from './npy.js';

export interface EtaGridSpec {
  out: string;
  title: string;
  etas: number[];
  rows: {
    /** Lines left of the row. */
    label: string[];
    input: [string, number];
    /** One result per η, in the order of `etas`. */
    tiles: [string, number][];
    /** Strict success of each tile. */
    ok: boolean[];
    /** Index of the automatic choice in `etas`. */
    chosen: number;
  }[];
}

const S = 128; // a 64×64 picture, doubled (nearest)
const GAP = 8;
const LABEL_W = 190;
const HEAD_H = 52;
const MARK_H = 20;
const ROW_GAP = 10;
const INPUT_GAP = 22; // between the input and the sweep

const escapeXml = (s: string) =>
  s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] as string);

export async function buildEtaGrid(spec: EtaGridSpec): Promise<void> {
  const batches = new Map<string, ImageBatch>();
  const tile = async ([path, k]: [string, number]) => {
    let b = batches.get(path);
    if (!b) {
      b = readNpyImages(path);
      batches.set(path, b);
    }
    return sharp(imageAt(b, k), { raw: { width: b.width, height: b.height, channels: 3 } })
      .resize(S, S, { kernel: 'nearest' })
      .png()
      .toBuffer();
  };
  const n = spec.etas.length;
  const col = (i: number) => LABEL_W + S + INPUT_GAP + i * (S + GAP);
  const rowH = S + MARK_H + ROW_GAP;
  const width = col(n) + 4;
  const height = HEAD_H + spec.rows.length * rowH + 4;
  const layers: OverlayOptions[] = [];
  const svg: string[] = [
    `<text x="8" y="20" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`,
    `<text x="${LABEL_W + S / 2}" y="${HEAD_H - 10}" font-size="14" text-anchor="middle">input</text>`,
    ...spec.etas.map((eta, i) => `<text x="${col(i) + S / 2}" y="${HEAD_H - 10}" font-size="14" text-anchor="middle">η ${eta}</text>`),
  ];
  for (const [r, row] of spec.rows.entries()) {
    const top = HEAD_H + r * rowH;
    layers.push({ input: await tile(row.input), left: LABEL_W, top });
    row.label.forEach((line, j) => {
      svg.push(
        `<text x="8" y="${top + S / 2 - 8 + j * 18}" font-size="13"${j === 0 ? ' font-weight="bold"' : ''}>${escapeXml(line)}</text>`,
      );
    });
    for (const [i, ref] of row.tiles.entries()) {
      layers.push({ input: await tile(ref), left: col(i), top });
      const ok = row.ok[i];
      const chosen = i === row.chosen;
      svg.push(
        `<text x="${col(i) + S / 2}" y="${top + S + 15}" font-size="13" text-anchor="middle" fill="${ok ? '#060' : '#a00'}"${chosen ? ' font-weight="bold"' : ''}>${ok ? '✓' : '✗'}${chosen ? ' auto' : ''}</text>`,
      );
      if (chosen)
        svg.push(
          `<rect x="${col(i) - 3}" y="${top - 3}" width="${S + 6}" height="${S + 6}" fill="none" stroke="#e07000" stroke-width="4"/>`,
        );
    }
  }
  layers.push({
    input: Buffer.from(
      `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><g font-family="DejaVu Sans, sans-serif" fill="#000">${svg.join('')}</g></svg>`,
    ),
    left: 0,
    top: 0,
  });
  await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite(layers)
    .png()
    .toFile(spec.out);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const specPath = process.argv[2];
  if (!specPath) {
    process.stderr.write('usage: node dist/eval/etaGrid.js SPEC.json\n');
    process.exit(2);
  }
  await buildEtaGrid(JSON.parse(readFileSync(specPath, 'utf8')) as EtaGridSpec);
}
