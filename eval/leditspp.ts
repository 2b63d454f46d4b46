/**
 * The LEDITS++ rows of `npm run eval` (issue 16): colour-only concepts ("+new −old", the quick
 * start's form) and object-named concepts ("+a new shape −a old shape"), each with no mask, the
 * noise mask M², the attention mask M¹ and their intersection (docs/algorithms.md §7), for each
 * inversion scheduler in SCHEDULERS. Strict success is eval/strict.py's, as every other row;
 * also: shape kept, median centroid shift, mean background PSNR, the worst background, and
 * seconds per invert + edit (this process, one thread).
 */
import type { EditOptions, InvertOptions, StableDiffusionModel } from '../lib/index.js';
import { imageTensor } from './heldout.js';
import type { Case, EditScore, Scorer } from './run.js';
import { mean, median } from './score.js';
import type { SheetPair } from './sheet.js';

/** How each inversion is made; every mask mode and form edits the same inversion. */
export interface SchedulerSetting {
  name: string;
  invert: InvertOptions;
}

export const SCHEDULERS: SchedulerSetting[] = [
  { name: 'DDPM, 100 steps', invert: { steps: 100 } },
  { name: 'DPM-Solver++, 50 steps', invert: { scheduler: 'dpmsolver++', steps: 50 } },
  { name: 'DPM-Solver++, 20 steps', invert: { scheduler: 'dpmsolver++', steps: 20 } },
];

interface MaskSetting {
  name: string;
  /** Edit options the mode sets (a concept's threshold 0 keeps every entry: no mask at all). */
  edit: Pick<EditOptions, 'implicitMask'>;
  threshold?: number;
}

export const MASKS: MaskSetting[] = [
  { name: 'no mask', edit: { implicitMask: 'off' }, threshold: 0 },
  { name: 'noise mask M²', edit: { implicitMask: 'off' } },
  { name: 'attention M¹', edit: { implicitMask: 'attention' } },
  { name: 'intersect M¹∩M²', edit: { implicitMask: 'intersect' } },
];

interface Form {
  name: string;
  concepts: (c: Case) => { prompt: string; remove?: boolean }[];
}

const FORMS: Form[] = [
  { name: '"+new −old" (colour only)', concepts: (c) => [{ prompt: c.new }, { prompt: c.old, remove: true }] },
  {
    name: '"+a new shape −a old shape" (object named)',
    concepts: (c) => [{ prompt: `a ${c.new} ${c.shape}` }, { prompt: `a ${c.old} ${c.shape}`, remove: true }],
  },
];

export interface LeditsppRow {
  scheduler: string;
  form: string;
  mask: string;
  n: number;
  strict: number;
  shapeKept: number;
  medianShift: number;
  backgroundPsnr: number;
  worstBackground: [number, string];
  secondsPerEdit: number;
  ok: boolean[];
}

export interface LeditsppResult {
  rows: LeditsppRow[];
  /** Contact-sheet rows: per mask mode, input → result pairs, then result → mask pairs. */
  sheetRows: { label: string; pairs: SheetPair[] }[];
}

/** Runs every scheduler × form × mask on `cases` (at most 8 mask pictures per mode for the sheet). */
export async function leditsppSection(
  model: StableDiffusionModel,
  cases: Case[],
  images: Uint8Array[],
  scorer: Scorer,
  sourceNpy: string,
  log: (line: string) => void,
): Promise<LeditsppResult> {
  const rows: LeditsppRow[] = [];
  const sheetRows: LeditsppResult['sheetRows'] = [];
  const withMaps = model.config.crossAttentionMaps !== undefined;
  const masks = MASKS.filter((m) => withMaps || m.edit.implicitMask === 'off');
  for (const scheduler of SCHEDULERS) {
    const results = new Map<string, Uint8Array[]>();
    const maskPictures = new Map<string, Uint8Array[]>();
    const seconds = new Map<string, number>();
    let invertMs = 0;
    for (const [k, c] of cases.entries()) {
      using x = imageTensor(images[k], 64, 64);
      const t = performance.now();
      using inv = await model.invert(x, { ...scheduler.invert, seed: c.index });
      invertMs += performance.now() - t;
      for (const form of FORMS) {
        for (const mask of masks) {
          const key = `${form.name}|${mask.name}`;
          const concepts = form.concepts(c).map((cc) => (mask.threshold === undefined ? cc : { ...cc, threshold: mask.threshold }));
          const t1 = performance.now();
          using r = await inv.edit({ ...mask.edit, concepts, returnMasks: k < 8 });
          seconds.set(key, (seconds.get(key) ?? 0) + performance.now() - t1);
          results.set(key, [...(results.get(key) ?? []), r.image.raw()]);
          if (k < 8) maskPictures.set(key, [...(maskPictures.get(key) ?? []), (await r.maskImages())[0].raw()]);
        }
      }
      if ((k + 1) % 10 === 0) log(`  LEDITS++ ${scheduler.name}: ${k + 1}/${cases.length}`);
    }
    for (const form of FORMS) {
      for (const mask of masks) {
        const key = `${form.name}|${mask.name}`;
        const id = `leditspp-${rows.length}`;
        const scores = scorer.edits(id, cases, images, results.get(key)!);
        rows.push(summarise(scheduler.name, form.name, mask.name, cases, scores, (invertMs + seconds.get(key)!) / cases.length / 1000));
        if (form === FORMS[0]) {
          const ok = scores.map((s) => s.strict);
          sheetRows.push({
            label: `LEDITS++ ${scheduler.name}, ${form.name}, ${mask.name}: input → result`,
            pairs: ok.slice(0, 8).map((v, k) => ({ before: [sourceNpy, k], after: [scorer.npy(id), k], caption: `${cases[k].bg}`, ok: v })),
          });
          const maskNpy = scorer.write(`${id}-masks`, maskPictures.get(key)!);
          sheetRows.push({
            label: `… its first concept's mask (red, averaged over the steps) over the result`,
            pairs: maskPictures
              .get(key)!
              .map((_, k) => ({ before: [scorer.npy(id), k], after: [maskNpy, k], caption: `+${cases[k].new}` })),
          });
        }
      }
    }
  }
  return { rows, sheetRows };
}

function summarise(scheduler: string, form: string, mask: string, cases: Case[], scores: EditScore[], secondsPerEdit: number): LeditsppRow {
  const ok = scores.map((s) => s.strict);
  const byBg = new Map<string, [number, number]>();
  cases.forEach((c, k) => {
    const [a, n] = byBg.get(c.bg) ?? [0, 0];
    byBg.set(c.bg, [a + (ok[k] ? 1 : 0), n + 1]);
  });
  const worst = [...byBg.entries()].map(([bg, [a, n]]) => [a / n, bg] as [number, string]).sort((x, y) => x[0] - y[0])[0] ?? [
    Number.NaN,
    '',
  ];
  const shifts = scores.map((s) => s.edited.shift).filter((v): v is number => v !== null);
  return {
    scheduler,
    form,
    mask,
    n: cases.length,
    strict: mean(ok.map(Number)),
    shapeKept: mean(scores.map((s) => Number(s.edited.shape_ok))),
    medianShift: shifts.length ? median(shifts) : Number.NaN,
    backgroundPsnr: mean(scores.map((s) => s.bg_psnr).filter(Number.isFinite)),
    worstBackground: worst,
    secondsPerEdit,
    ok,
  };
}

/** The rows as a markdown table. */
export function leditsppMarkdown(rows: LeditsppRow[]): string[] {
  const pct = (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(0)}%` : 'n/a');
  const out = [
    '| scheduler | concepts | mask | n | strict | shape kept | median shift | background PSNR | worst background | s per invert + edit |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows)
    out.push(
      `| ${r.scheduler} | ${r.form} | ${r.mask} | ${r.n} | ${pct(r.strict)} | ${pct(r.shapeKept)} | ${Number.isFinite(r.medianShift) ? `${r.medianShift.toFixed(2)} px` : 'n/a'} | ${Number.isFinite(r.backgroundPsnr) ? `${r.backgroundPsnr.toFixed(1)} dB` : 'n/a'} | ${pct(r.worstBackground[0])} (${r.worstBackground[1]}) | ${r.secondsPerEdit.toFixed(2)} |`,
    );
  return out;
}
