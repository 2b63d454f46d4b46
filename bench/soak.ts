/**
 * The soak test (issue 20; not part of `npm test`): one process runs rounds of overlapping jobs on
 * the shipped model for N minutes — text-to-image, LEDITS inversion and edits, Imagic training and
 * generation, saved and reloaded inversions and Imagic results — with random aborts and inputs
 * disposed while their jobs are queued or running. It samples RSS, live handles, the CPU cache's
 * bytes and the event-loop delay every few seconds, and writes them as a CSV and a PNG plot.
 *
 * Checked and reported: RSS after warm-up within ±10% of its mean with its slope (MB/min), live
 * handles back to the baseline after every round, zero crashes (a failure that is not a
 * TorchEditError with an expected code), and every repeated seeded job bit-identical to the first.
 * Exits 1 when a target is missed.
 *
 *   npm run soak -- --minutes N [--out DIR] [--seed S] [--sample-seconds S]
 *
 * Defaults: 5 minutes, results in bench/soak/ (soak.csv, soak.png), warm-up the first 20% of the run.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import {
  loadImagic,
  loadInversion,
  loadModel,
  memory,
  type Tensor,
  TorchEditError,
  type ErrorCode,
  type StableDiffusionModel,
} from '../lib/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    out: { type: 'string', default: join(root, 'bench', 'soak') },
    seed: { type: 'string', default: '1' },
    'sample-seconds': { type: 'string', default: '3' },
  },
});
const minutes = Number(values.minutes);
const sampleSeconds = Number(values['sample-seconds']);
assert.ok(minutes > 0 && sampleSeconds > 0, '--minutes and --sample-seconds must be positive');
const image = join(root, 'examples', 'red-circle.png');
const scratch = mkdtempSync(join(tmpdir(), 'torchedit-soak-'));

/** A small seeded PRNG (xorshift32), so a run's sequence of aborts and disposals can be replayed. */
let state = Number(values.seed) | 1;
function random(): number {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 2 ** 32;
}

// ---------------------------------------------------------------- sampling

interface Sample {
  seconds: number;
  round: number;
  rssMB: number;
  handles: number;
  tensorMB: number;
  cacheMB: number;
  loopP99ms: number;
  loopMaxms: number;
}
const samples: Sample[] = [];
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const started = performance.now();
let round = 0;

function liveHandles(): number {
  const m = memory();
  return m.liveTensors + m.liveModules + m.liveModels;
}

function sample(): void {
  const m = memory();
  samples.push({
    seconds: (performance.now() - started) / 1000,
    round,
    rssMB: process.memoryUsage().rss / 2 ** 20,
    handles: m.liveTensors + m.liveModules + m.liveModels,
    tensorMB: m.tensorBytes / 2 ** 20,
    cacheMB: m.cpuCache.cachedBytes / 2 ** 20,
    loopP99ms: loop.percentile(99) / 1e6,
    loopMaxms: loop.max / 1e6,
  });
  loop.reset();
}

// ---------------------------------------------------------------- checks

const failures: string[] = [];
let crashes = 0;
let aborted = 0;
let disposedRejections = 0;
let jobs = 0;

/** Runs a job that may fail only with `codes`; anything else is a crash. */
async function job<T>(what: string, codes: readonly ErrorCode[], run: () => Promise<T>): Promise<T | undefined> {
  jobs++;
  try {
    return await run();
  } catch (error) {
    if (error instanceof TorchEditError && codes.includes(error.code)) {
      if (error.code === 'ERR_ABORTED') aborted++;
      if (error.code === 'ERR_DISPOSED') disposedRejections++;
      return undefined;
    }
    crashes++;
    failures.push(`${what}: ${(error as Error)?.stack ?? error}`);
    return undefined;
  }
}

/** The first result of each seeded job; every repetition must be bit-identical to it. */
const firsts = new Map<string, Buffer>();
let repeats = 0;
async function same(what: string, tensor: Tensor): Promise<void> {
  const data = await tensor.data();
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const first = firsts.get(what);
  if (!first) firsts.set(what, Buffer.from(bytes));
  else {
    repeats++;
    if (!first.equals(bytes)) failures.push(`${what}: round ${round} differs from the first`);
  }
}

/** Resolves after a random delay of up to `ms`. */
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, random() * ms));

// ---------------------------------------------------------------- one round

const fast = { steps: 8 };

async function round_(model: StableDiffusionModel): Promise<void> {
  const dir = join(scratch, `round-${round}`);
  mkdirSync(dir);
  await Promise.all([
    // Text-to-image, seeded: bit-identical every round.
    job('generate', [], async () => {
      using result = await model.generate('a red circle', { ...fast, seed: 1 });
      await same('generate', result.latents);
    }),
    // A text-to-image aborted at a random moment (queued, running or done).
    job('generate (aborted)', ['ERR_ABORTED'], async () => {
      const controller = new AbortController();
      const running = model.generate('a blue square', { ...fast, seed: 2, signal: controller.signal });
      await pause(400);
      controller.abort();
      (await running).dispose();
    }),
    // Invert, edit, save, reload, edit again: both edits equal the first round's.
    job('invert → edit → save → load → edit', [], async () => {
      using inversion = await model.invert(image, { steps: 10, seed: 0, sourcePrompt: 'a red circle' });
      const options = { concepts: [{ prompt: 'blue' }, { prompt: 'red', remove: true }] };
      {
        using edited = await inversion.edit(options);
        await same('edit', edited.latents);
      }
      await inversion.save(join(dir, 'inversion.safetensors'));
      using again = await loadInversion(join(dir, 'inversion.safetensors'), model);
      using reloaded = await again.edit(options);
      await same('edit', reloaded.latents);
    }),
    // An inversion disposed while its edit is queued or running.
    job('edit of a disposed inversion', ['ERR_DISPOSED', 'ERR_ABORTED'], async () => {
      const inversion = await model.invert(image, { steps: 6, seed: 3 });
      const editing = inversion.edit({ concepts: [{ prompt: 'green' }], signal: AbortSignal.timeout(60_000) });
      await pause(200);
      inversion.dispose();
      (await editing).dispose();
    }),
    // A tensor disposed while the job that reads it is queued or running.
    job('decode of a disposed tensor', ['ERR_DISPOSED'], async () => {
      const latents = await model.encodeImage(image);
      const decoding = model.decodeLatents(latents);
      if (random() < 0.5) await pause(50);
      latents.dispose();
      (await decoding).dispose();
    }),
    // Imagic: train, generate, save, reload, generate again: both equal the first round's.
    job('imagic → generate → save → load → generate', ['ERR_ABORTED'], async () => {
      const controller = new AbortController();
      if (random() < 0.2) setTimeout(() => controller.abort(), random() * 3000); // sometimes aborted mid-training
      using result = await model.imagic(image, 'a blue circle', {
        embedding: { steps: 4 },
        finetune: { steps: 4 },
        seed: 0,
        signal: controller.signal,
      });
      {
        using generated = await result.generate({ eta: 0.7, seed: 1, steps: 6 });
        await same('imagic', generated.latents);
      }
      await result.save(join(dir, 'imagic'));
      using reloaded = await loadImagic(join(dir, 'imagic'), model);
      using generated = await reloaded.generate({ eta: 0.7, seed: 1, steps: 6 });
      await same('imagic', generated.latents);
    }),
  ]);
  rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- run

const model = await loadModel(undefined, { onWarning: () => {} });
const baseline = liveHandles();
const roundsAtBaseline: boolean[] = [];
const timer = setInterval(sample, sampleSeconds * 1000);
sample();
console.log(`soak: ${minutes} min on ${model.config.name}, baseline ${baseline} live handles, samples every ${sampleSeconds} s`);
while ((performance.now() - started) / 60_000 < minutes) {
  await round_(model);
  round++;
  const handles = liveHandles();
  roundsAtBaseline.push(handles === baseline);
  if (handles !== baseline) failures.push(`round ${round}: ${handles} live handles after the round, baseline ${baseline}`);
  process.stdout.write(`\rround ${round}: ${jobs} jobs, ${aborted} aborted, ${disposedRejections} disposed, ${crashes} crashes`);
}
clearInterval(timer);
sample();
model.dispose();
rmSync(scratch, { recursive: true, force: true });
console.log();

// ---------------------------------------------------------------- report

const warm = samples.filter((s) => s.seconds >= 0.2 * minutes * 60);
const rss = warm.map((s) => s.rssMB);
const mean = rss.reduce((a, b) => a + b, 0) / rss.length;
const spread = Math.max(...rss.map((r) => Math.abs(r - mean) / mean));
const slope = linearSlope(
  warm.map((s) => s.seconds / 60),
  rss,
); // MB per minute
const report = {
  minutes,
  rounds: round,
  jobs,
  aborted,
  disposedRejections,
  crashes,
  repeatedJobs: repeats,
  mismatches: failures.filter((f) => f.includes('differs')).length,
  roundsBackToBaseline: `${roundsAtBaseline.filter(Boolean).length}/${roundsAtBaseline.length}`,
  rssMeanMB: round1(mean),
  rssSpreadPercent: round1(spread * 100),
  rssSlopeMBPerMinute: round1(slope),
  loopP99MaxMs: round1(Math.max(...warm.map((s) => s.loopP99ms))),
};
mkdirSync(values.out, { recursive: true });
writeFileSync(join(values.out, 'soak.csv'), toCsv(samples));
await sharp(Buffer.from(plot(samples, 0.2 * minutes * 60)))
  .png()
  .toFile(join(values.out, 'soak.png'));
writeFileSync(join(values.out, 'soak.json'), `${JSON.stringify(report, null, 2)}\n`);
console.log(report);
for (const failure of failures.slice(0, 20)) console.log(`FAILED ${failure}`);
// Targets: flat RSS (±10%, and a slope that would not add 10% of the mean over the run), handles back, no crash, identical repeats.
const flat = spread <= 0.1 && Math.abs(slope) * minutes * 0.8 <= 0.1 * mean;
console.log(`targets: RSS ${flat ? 'flat' : 'NOT flat'}; ${failures.length === 0 ? 'no failures' : `${failures.length} failures`}`);
process.exit(flat && failures.length === 0 ? 0 : 1);

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** Least-squares slope of y over x. */
function linearSlope(x: number[], y: number[]): number {
  const n = x.length;
  if (n < 2) return 0;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (x[i] - mx) * (y[i] - my);
    den += (x[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function toCsv(rows: Sample[]): string {
  const keys = Object.keys(rows[0]) as (keyof Sample)[];
  return `${keys.join(',')}\n${rows.map((r) => keys.map((k) => (Number.isInteger(r[k]) ? r[k] : r[k].toFixed(3))).join(',')).join('\n')}\n`;
}

/** Three stacked panels over time: RSS and cache (MB), live handles, event-loop delay p99 (ms); warm-up shaded. */
function plot(rows: Sample[], warmUp: number): string {
  const [W, H, left, top, gap] = [900, 600, 70, 40, 30];
  const panelH = (H - top - 3 * gap) / 3;
  const tMax = Math.max(...rows.map((r) => r.seconds), 1);
  const x = (t: number) => left + ((W - left - 20) * t) / tMax;
  const panels: [title: string, series: [keyof Sample, string][]][] = [
    [
      'RSS and CPU cache (MB)',
      [
        ['rssMB', '#1f77b4'],
        ['cacheMB', '#ff7f0e'],
        ['tensorMB', '#2ca02c'],
      ],
    ],
    ['live handles (tensors + modules + models)', [['handles', '#d62728']]],
    ['event-loop delay p99 per sample (ms)', [['loopP99ms', '#9467bd']]],
  ];
  const parts: string[] = [`<rect width="${W}" height="${H}" fill="white"/>`];
  parts.push(
    `<text x="${left}" y="22" font-family="sans-serif" font-size="15">torchedit soak: ${rows.length} samples over ${(tMax / 60).toFixed(1)} min</text>`,
  );
  panels.forEach(([title, series], i) => {
    const y0 = top + i * (panelH + gap);
    const yMax = Math.max(...series.flatMap(([k]) => rows.map((r) => r[k] as number)), 1) * 1.1;
    const y = (v: number) => y0 + panelH - (panelH * v) / yMax;
    parts.push(`<rect x="${left}" y="${y0}" width="${x(warmUp) - left}" height="${panelH}" fill="#eee"/>`);
    parts.push(`<rect x="${left}" y="${y0}" width="${W - left - 20}" height="${panelH}" fill="none" stroke="#888"/>`);
    parts.push(`<text x="${left + 5}" y="${y0 + 14}" font-family="sans-serif" font-size="12">${title}</text>`);
    parts.push(`<text x="${left - 5}" y="${y0 + 10}" font-family="sans-serif" font-size="11" text-anchor="end">${yMax.toFixed(0)}</text>`);
    parts.push(`<text x="${left - 5}" y="${y0 + panelH}" font-family="sans-serif" font-size="11" text-anchor="end">0</text>`);
    series.forEach(([key, color], j) => {
      const points = rows.map((r) => `${x(r.seconds).toFixed(1)},${y(r[key] as number).toFixed(1)}`).join(' ');
      parts.push(`<polyline points="${points}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
      parts.push(
        `<text x="${W - 30 - 90 * (series.length - j)}" y="${y0 + 14}" font-family="sans-serif" font-size="11" fill="${color}">${key}</text>`,
      );
    });
  });
  parts.push(
    `<text x="${W - 20}" y="${H - 8}" font-family="sans-serif" font-size="11" text-anchor="end">${(tMax / 60).toFixed(1)} min</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join('')}</svg>`;
}
