/**
 * How cost grows: wall time against steps (text-to-image), SEGA concepts (LEDITS edit) and image
 * size (text-to-image at latent 16/32/48) on the SD-structure bundle, torchedit and Python, one
 * fresh process per point and side (as bench/run.ts measures). Prints a table, writes it to
 * bench/RESULTS.md's "scaling" section and plots it to bench/scaling.png (an SVG rendered by sharp).
 *
 *   node dist/bench/scaling.js [--quick] [--threads T] [--no-python] [--no-write]
 *   node dist/bench/scaling.js --replot      (re-render the PNG from the last run's numbers)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import {
  bundle,
  cacheDir,
  currentLoad,
  ensureInversion,
  fmt,
  machine,
  machineMarkdown,
  repoRoot,
  runOne,
  writeSection,
} from './measure.js';
import { concept, unetEvaluations, workloads, type EditSpec, type RunResult, type Txt2ImgSpec, type WorkloadSpec } from './workloads.js';

export interface ScalingOptions {
  quick: boolean;
  threads: number;
  write: boolean;
  /** Also run the Python side at every point (default true). */
  python?: boolean;
}

type Series = 'steps' | 'concepts' | 'size';

interface Point {
  series: Series;
  x: number;
  spec: WorkloadSpec;
  torchedit?: RunResult;
  python?: RunResult;
}

const SERIES: Record<Series, { title: string; axis: string; what: string }> = {
  steps: { title: 'time vs steps', axis: 'DDIM steps', what: 'text-to-image, CFG 7.5, latent 32' },
  concepts: { title: 'time vs SEGA concepts', axis: 'concepts', what: 'LEDITS edit, no target prompt' },
  size: { title: 'time vs image size', axis: 'latent side', what: 'text-to-image, CFG 7.5' },
};

const CONCEPTS = [concept('blue'), concept('a square'), concept('red', true), concept('a green background'), concept('stripes')];

function grid(quick: boolean): Point[] {
  const base = workloads(quick).txt2img as Txt2ImgSpec;
  const points: Point[] = [];
  for (const steps of quick ? [2, 4, 8] : [10, 20, 40]) points.push({ series: 'steps', x: steps, spec: { ...base, steps } });
  const inversionSteps = quick ? 8 : 50;
  const replay = quick ? 2 : 10;
  for (const c of quick ? [0, 1, 3] : [0, 1, 3, 5]) {
    const spec: EditSpec = {
      kind: 'edit',
      inversionSteps,
      skip: inversionSteps - replay,
      targetPrompt: null,
      guidanceScale: 15,
      concepts: CONCEPTS.slice(0, c),
      momentumScale: 0.3,
      momentumBeta: 0.6,
      maskMode: 'channel',
      eta: 1,
    };
    points.push({ series: 'concepts', x: c, spec });
  }
  for (const latentSize of quick ? [16, 32] : [16, 32, 48])
    points.push({ series: 'size', x: latentSize, spec: { ...base, steps: quick ? 2 : 10, latentSize } });
  return points;
}

function scalingTable(points: Point[]): string {
  const lines = [
    '| series | setting | UNet calls × batch | torchedit s | Python s | torchedit/Python | torchedit s/call | Python s/call |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const p of points) {
    const ev = unetEvaluations(p.spec);
    const te = p.torchedit?.wallSeconds;
    const py = p.python?.wallSeconds;
    lines.push(
      `| ${p.series} (${SERIES[p.series].what}) | ${SERIES[p.series].axis} ${p.x} | ${ev.calls} × ${ev.batch} | ${fmt(te, 3)} | ${fmt(py, 3)} | ` +
        `${te !== undefined && py !== undefined ? fmt(te / py) : '–'} | ${fmt(te !== undefined ? te / ev.calls : undefined, 3)} | ${fmt(py !== undefined ? py / ev.calls : undefined, 3)} |`,
    );
  }
  return lines.join('\n');
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

/** Round tick step for an axis from 0 to `max` with about `count` intervals (1, 2, 2.5 or 5 × 10^k). */
function tickStep(max: number, count = 4): number {
  const raw = max / count;
  const base = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * base).find((s) => s >= raw) ?? 10 * base;
}

/** Three panels (steps, concepts, size): seconds against the setting, torchedit solid, Python dashed. */
export function plotSvg(points: Point[], subtitle: string): string {
  const panelW = 330,
    panelH = 290,
    top = 70,
    left = 70,
    gap = 70,
    right = 40;
  const W = left + 3 * panelW + 2 * gap + right,
    H = 440;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="28" font-size="18" text-anchor="middle">torchedit vs plain PyTorch: how cost grows (SD-structure bundle)</text>`,
    `<text x="${W / 2}" y="50" font-size="12" text-anchor="middle" fill="#555">${escapeXml(subtitle)}</text>`,
  ];
  (Object.keys(SERIES) as Series[]).forEach((series, i) => {
    const ps = points.filter((p) => p.series === series);
    if (ps.length === 0) return;
    const x0 = left + i * (panelW + gap);
    const xs = ps.map((p) => p.x);
    const ys = ps.flatMap((p) => [p.torchedit?.wallSeconds, p.python?.wallSeconds]).filter((v): v is number => v !== undefined);
    const xMin = Math.min(...xs),
      xMax = Math.max(...xs);
    const step = tickStep(Math.max(...ys, 1e-3));
    const yMax = step * Math.ceil((Math.max(...ys, 1e-3) * 1.05) / step);
    const pad = 12;
    const px = (x: number) => x0 + pad + (xMax === xMin ? (panelW - 2 * pad) / 2 : ((x - xMin) / (xMax - xMin)) * (panelW - 2 * pad));
    const py = (y: number) => top + panelH - (y / yMax) * panelH;
    parts.push(`<rect x="${x0}" y="${top}" width="${panelW}" height="${panelH}" fill="none" stroke="#999"/>`);
    parts.push(`<text x="${x0 + panelW / 2}" y="${top - 8}" font-size="14" text-anchor="middle">${escapeXml(SERIES[series].title)}</text>`);
    for (let y = 0; y <= yMax + 1e-9; y += step) {
      parts.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${py(y)}" y2="${py(y)}" stroke="#eee"/>`);
      parts.push(`<text x="${x0 - 6}" y="${py(y) + 4}" font-size="11" text-anchor="end">${Number(y.toFixed(3))}</text>`);
    }
    for (const x of xs) parts.push(`<text x="${px(x)}" y="${top + panelH + 16}" font-size="11" text-anchor="middle">${x}</text>`);
    parts.push(
      `<text x="${x0 + panelW / 2}" y="${top + panelH + 34}" font-size="12" text-anchor="middle">${escapeXml(SERIES[series].axis)} (${escapeXml(SERIES[series].what)})</text>`,
    );
    parts.push(
      `<text x="${x0 - 40}" y="${top + panelH / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 ${x0 - 40} ${top + panelH / 2})">seconds</text>`,
    );
    for (const [side, color, dash] of [
      ['torchedit', '#1f77b4', ''],
      ['python', '#d62728', '6 4'],
    ] as const) {
      const pts = ps.filter((p) => p[side] !== undefined).map((p) => [px(p.x), py(p[side]!.wallSeconds)] as const);
      if (pts.length === 0) continue;
      parts.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''} points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}"/>`,
      );
      for (const [a, b] of pts) parts.push(`<circle cx="${a.toFixed(1)}" cy="${b.toFixed(1)}" r="3.5" fill="${color}"/>`);
    }
  });
  const ly = H - 22;
  parts.push(
    `<line x1="${W / 2 - 170}" x2="${W / 2 - 140}" y1="${ly}" y2="${ly}" stroke="#1f77b4" stroke-width="2"/><text x="${W / 2 - 134}" y="${ly + 4}" font-size="12">torchedit</text>`,
  );
  parts.push(
    `<line x1="${W / 2 + 10}" x2="${W / 2 + 40}" y1="${ly}" y2="${ly}" stroke="#d62728" stroke-width="2" stroke-dasharray="6 4"/><text x="${W / 2 + 46}" y="${ly + 4}" font-size="12">Python (eager, TorchScript modules)</text>`,
  );
  parts.push('</svg>');
  return parts.join('\n');
}

const lastScaling = join(cacheDir, 'last-scaling.json');

async function render(points: Point[], subtitle: string): Promise<void> {
  await sharp(Buffer.from(plotSvg(points, subtitle)))
    .png()
    .toFile(join(repoRoot, 'bench', 'scaling.png'));
}

export async function runScaling(o: ScalingOptions): Promise<void> {
  const m = machine(o.threads);
  const b = bundle('sd');
  const points = grid(o.quick);
  for (const p of points) {
    if (p.spec.kind === 'edit') p.spec = await ensureInversion(b, p.spec, o.threads);
    const name = `scaling-${p.series}-${p.x}`;
    p.torchedit = await runOne('torchedit', b, name, p.spec, o.threads);
    if (o.python !== false) p.python = await runOne('python', b, name, p.spec, o.threads);
    process.stderr.write(
      `bench: scaling ${p.series} ${p.x}: torchedit ${fmt(p.torchedit.wallSeconds)} s, Python ${fmt(p.python?.wallSeconds)} s\n`,
    );
  }
  const body = [
    `## How cost grows${o.quick ? ' (quick)' : ''}`,
    '',
    machineMarkdown(m, currentLoad()),
    '',
    `Bundle: ${b.label}. One run per point and side (fresh process, warm-up job first). Edits replay ${o.quick ? 2 : 10} steps of a ${o.quick ? 8 : 50}-step inversion.`,
    '',
    scalingTable(points),
    '',
    '![time vs steps, concepts and size](scaling.png)',
  ].join('\n');
  process.stdout.write(`${body}\n`);
  if (o.write) {
    const subtitle = `${m.cpu}, ${o.threads} thread(s), ${m.date}${o.quick ? ', quick mode' : ''}`;
    await render(points, subtitle);
    mkdirSync(cacheDir, { recursive: true });
    writeFileSync(lastScaling, JSON.stringify({ subtitle, points }, null, 2));
    writeSection('scaling', body);
    process.stderr.write('bench: wrote bench/scaling.png and bench/RESULTS.md (scaling)\n');
  }
}

/** Re-renders bench/scaling.png from the last run's points (bench/.cache/last-scaling.json). */
export async function replot(): Promise<void> {
  const { subtitle, points } = JSON.parse(readFileSync(lastScaling, 'utf8')) as { subtitle: string; points: Point[] };
  await render(points, subtitle);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  if (argv[0] === '--replot') {
    await replot();
    process.exit(0);
  }
  const threadsAt = argv.indexOf('--threads');
  const unknown = argv.filter(
    (a, i) => !['--quick', '--no-python', '--no-write', '--threads'].includes(a) && !(threadsAt >= 0 && i === threadsAt + 1),
  );
  if (unknown.length) {
    process.stderr.write('usage: node dist/bench/scaling.js [--quick] [--threads T] [--no-python] [--no-write]\n');
    process.exit(2);
  }
  await runScaling({
    quick: argv.includes('--quick'),
    threads: threadsAt >= 0 ? Number(argv[threadsAt + 1]) : 1,
    write: !argv.includes('--no-write'),
    python: !argv.includes('--no-python'),
  });
}
