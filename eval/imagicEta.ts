/**
 * The Imagic η rows of `npm run eval` (section `imagic-eta`, issue 21): strict success of Imagic
 * at the best fixed η in hindsight over a grid, at the paper's η = 0.7, and at the η chosen by
 * `result.chooseEta` with its built-in criterion, each for the full fine-tune (`'all'`) and a
 * subset (`'cross-attention'`). Strict success is eval/strict.py's, as every other row.
 *
 * Per case and fine-tune: one model.imagic(input, target caption) at the model's defaults (only
 * `finetune.parameters` named), one sweep over ETA_GRID (seed = the scene index: every η starts
 * from the same noise, as chooseEta's sweep does), and the built-in criterion's (gain, distance)
 * of every candidate (chooseEta's own scoring, lib/pipelines/imagic/chooseEta.ts
 * scoreCandidates). The automatic η is chooseEta's choice at the model's defaults (grid, fidelity): each candidate's
 * gain and distance depend on that candidate alone (native/core/edit/imagic_eta.cc draws the
 * (t, ε) pairs once per call), so the choice over the grid's part of the sweep is the one
 * chooseEta makes; the first case checks it against a real chooseEta call. Every candidate's gain
 * and distance are kept in results.json, so another fidelity weight or grid can be re-scored
 * without running the model again (pairs cannot).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { FinetuneParameters, StableDiffusionModel } from '../lib/index.js';
import { bestIndex, modelCriterionScores, scoreCandidates } from '../lib/pipelines/imagic/chooseEta.js';
import { imageTensor } from './heldout.js';
import type { Case, EditScore, Scorer } from './run.js';
import { mean } from './score.js';

/** The hindsight grid: chooseEta's library grid (a model's recommended grid must be a part of it), and beyond it up to the model's recommended η (1.2 on shapes-64). */
export const ETA_GRID = [0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.2, 1.4];
/** The paper's default η (arXiv:2210.09276 §4.3), the library's default without a model recommendation. */
export const PAPER_ETA = 0.7;
export const FINETUNES: { name: string; parameters: FinetuneParameters }[] = [
  { name: 'all', parameters: 'all' },
  { name: 'cross-attention', parameters: 'cross-attention' },
];

export interface ImagicEtaCase {
  index: number;
  finetune: string;
  /** Strict success at each η of ETA_GRID. */
  strict: boolean[];
  /** The built-in criterion's gain and distance of each η of ETA_GRID (default pairs). */
  gain: number[];
  distance: number[];
  /** chooseEta's choice over the model's grid at the model's fidelity (its defaults). */
  autoEta: number;
  /** Final losses of stage A and B. */
  loss: { embedding: number; finetune: number };
  seconds: { train: number; sweep: number; score: number };
}

export interface ImagicEtaRow {
  finetune: string;
  how: string;
  eta: string;
  n: number;
  strict: number;
  ok: boolean[];
}

export interface ImagicEtaResult {
  cases: ImagicEtaCase[];
  rows: ImagicEtaRow[];
  /** Strict success of each finetune at each η of the grid. */
  perEta: Record<string, number[]>;
  /** The first case's check: chooseEta's own η and the one derived from the sweep. */
  check: { chooseEta: number; derived: number } | null;
  /** Result batches (.npy in the work folder) of each finetune, one per η of ETA_GRID. */
  npy: Record<string, string[]>;
  caseSet: 'reported' | 'tuning';
  /** chooseEta's settings in force: the model's defaults. */
  auto: { etas: number[]; fidelity: number; pairs: number };
}

/** chooseEta's automatic η over `grid` (a part of ETA_GRID) from the candidates' gains and distances. */
export function autoEta(gain: number[], distance: number[], grid: readonly number[], fidelity: number): number {
  const idx = grid.map((eta) => ETA_GRID.indexOf(eta));
  if (idx.some((i) => i < 0)) throw new Error(`grid ${grid} is not a part of ETA_GRID`);
  const scores = modelCriterionScores(
    idx.map((i) => gain[i]),
    idx.map((i) => distance[i]),
    fidelity,
  );
  return grid[bestIndex(scores, [...grid])];
}

export async function imagicEtaSection(
  model: StableDiffusionModel,
  cases: Case[],
  images: Uint8Array[],
  scorer: Scorer,
  caseSet: 'reported' | 'tuning',
  log: (line: string) => void,
): Promise<ImagicEtaResult> {
  const records: ImagicEtaCase[] = [];
  const rows: ImagicEtaRow[] = [];
  const perEta: Record<string, number[]> = {};
  const npy: Record<string, string[]> = {};
  let check: ImagicEtaResult['check'] = null;
  const auto = model.defaults.imagicChooseEta;
  const grid = auto.etas;
  const fidelity = auto.criterion.fidelity;
  for (const ft of FINETUNES) {
    const results: Uint8Array[][] = ETA_GRID.map(() => []);
    const partial: Omit<ImagicEtaCase, 'strict'>[] = [];
    for (const [k, c] of cases.entries()) {
      using x = imageTensor(images[k], 64, 64);
      const t0 = performance.now();
      using trained = await model.imagic(x, c.target, { seed: c.index, finetune: { parameters: ft.parameters } });
      const t1 = performance.now();
      const seed = BigInt(c.index);
      const sweep = await trained.sweep({ etas: ETA_GRID, seed });
      const t2 = performance.now();
      try {
        for (const [i, g] of sweep.entries()) results[i].push(g.image.raw());
        const candidates = await scoreCandidates(trained, sweep, ETA_GRID, seed, {}, trained.modelEtaScores());
        const gain = candidates.map((s) => s.gain as number);
        const distance = candidates.map((s) => s.distance as number);
        const chosen = autoEta(gain, distance, grid, fidelity);
        const t3 = performance.now();
        if (k === 0 && check === null) {
          const real = await trained.chooseEta({ seed });
          real.image.dispose();
          check = { chooseEta: real.eta, derived: chosen };
          if (real.eta !== chosen) log(`  ! chooseEta chose η ${real.eta}, the sweep's scores ${chosen}`);
        }
        partial.push({
          index: c.index,
          finetune: ft.name,
          gain,
          distance,
          autoEta: chosen,
          loss: { embedding: trained.losses.embedding.at(-1) ?? Number.NaN, finetune: trained.losses.finetune.at(-1) ?? Number.NaN },
          seconds: { train: (t1 - t0) / 1000, sweep: (t2 - t1) / 1000, score: (t3 - t2) / 1000 },
        });
      } finally {
        for (const g of sweep) g.dispose();
      }
      log(
        `  Imagic η ${ft.name} ${k + 1}/${cases.length}: auto η ${partial.at(-1)?.autoEta}, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
    }
    const scores: EditScore[][] = ETA_GRID.map((_, i) => scorer.edits(`imagic-eta-${ft.name}-${i}`, cases, images, results[i]));
    npy[ft.name] = ETA_GRID.map((_, i) => scorer.npy(`imagic-eta-${ft.name}-${i}`));
    for (const [k, p] of partial.entries()) records.push({ ...p, strict: scores.map((s) => s[k].strict) });
    const mine = records.filter((r) => r.finetune === ft.name);
    perEta[ft.name] = ETA_GRID.map((_, i) => mean(mine.map((r) => Number(r.strict[i]))));
    rows.push(...summaryRows(ft.name, mine, fidelity, grid));
  }
  return { cases: records, rows, perEta, check, npy, caseSet, auto: { etas: [...grid], fidelity, pairs: auto.criterion.pairs } };
}

/** Best fixed η in hindsight, the paper's η, the automatic η, and the per-case oracle over chooseEta's grid. */
export function summaryRows(finetune: string, records: ImagicEtaCase[], fidelity: number, grid: readonly number[]): ImagicEtaRow[] {
  const at = (i: number) => records.map((r) => r.strict[i]);
  const shares = ETA_GRID.map((_, i) => mean(at(i).map(Number)));
  // Ties go to the smaller η, as chooseEta's.
  const best = shares.reduce((b, s, i) => (s > shares[b] ? i : b), 0);
  const paper = ETA_GRID.indexOf(PAPER_ETA);
  const auto = records.map((r) => r.strict[ETA_GRID.indexOf(autoEta(r.gain, r.distance, grid, fidelity))]);
  const oracle = records.map((r) => grid.some((eta) => r.strict[ETA_GRID.indexOf(eta)]));
  const row = (how: string, eta: string, ok: boolean[]): ImagicEtaRow => ({
    finetune,
    how,
    eta,
    n: ok.length,
    strict: mean(ok.map(Number)),
    ok,
  });
  const chosen = records.map((r) => autoEta(r.gain, r.distance, grid, fidelity));
  const counts = grid.map((eta) => `${eta}×${chosen.filter((e) => e === eta).length}`).filter((s) => !s.endsWith('×0'));
  return [
    row('best fixed η in hindsight', `${ETA_GRID[best]} (grid ${ETA_GRID[0]}–${ETA_GRID.at(-1)})`, at(best)),
    row("paper's η", String(PAPER_ETA), at(paper)),
    row(`automatic (chooseEta, fidelity ${fidelity})`, `chosen: ${counts.join(', ')}`, auto),
    row(`any η of chooseEta's grid (${grid[0]}–${grid.at(-1)}) succeeds (the criterion's ceiling)`, '–', oracle),
  ];
}

/** The section's markdown: the headline rows, strict success per η, and the timings. */
export function imagicEtaMarkdown(r: ImagicEtaResult): string[] {
  const pct = (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(0)}%` : 'n/a');
  const frac = (ok: boolean[]) => `${ok.filter(Boolean).length}/${ok.length}`;
  const out = [
    `Cases: ${r.caseSet === 'tuning' ? '**the tuning set** (eval/cases.py --set tuning, disjoint from the reported cases)' : 'the first reported one-object cases'}; per case and fine-tune one model.imagic at the model's defaults with only \`finetune.parameters\` named, one sweep over η ∈ {${ETA_GRID.join(', ')}} (seed = the scene index), and chooseEta's built-in criterion on every candidate (${r.auto.pairs} (t, ε) pairs). The automatic η is chooseEta's choice at the model's defaults, over the grid {${r.auto.etas.join(', ')}} at fidelity ${r.auto.fidelity}${r.check ? `; checked on the first case against a real chooseEta call: ${r.check.chooseEta === r.check.derived ? `same η (${r.check.chooseEta})` : `**differs** (chooseEta ${r.check.chooseEta}, derived ${r.check.derived})`}` : ''}. "Best fixed η in hindsight" is chosen on these same cases, so it flatters.`,
    '',
    '| fine-tune | η | which | n | strict success |',
    '| --- | --- | --- | ---: | ---: |',
    ...r.rows.map((x) => `| ${x.finetune} | ${x.how} | ${x.eta} | ${x.n} | ${frac(x.ok)} = ${pct(x.strict)} |`),
    '',
    'Strict success at each η of the grid (the same candidates):',
    '',
    `| fine-tune | ${ETA_GRID.map((e) => `η ${e}`).join(' | ')} |`,
    `| --- | ${ETA_GRID.map(() => '---:').join(' | ')} |`,
    ...Object.entries(r.perEta).map(([ft, s]) => `| ${ft} | ${s.map(pct).join(' | ')} |`),
    '',
  ];
  for (const ft of Object.keys(r.perEta)) {
    const mine = r.cases.filter((c) => c.finetune === ft);
    const s = (f: (c: ImagicEtaCase) => number) => mean(mine.map(f)).toFixed(1);
    out.push(
      `- ${ft}: wall seconds per case (one thread; the machine shared with other jobs) — train ${s((c) => c.seconds.train)}, sweep of ${ETA_GRID.length} η ${s((c) => c.seconds.sweep)}, criterion ${s((c) => c.seconds.score)}; mean final loss stage A ${mean(mine.map((c) => c.loss.embedding)).toFixed(4)}, stage B ${mean(mine.map((c) => c.loss.finetune)).toFixed(4)}.`,
    );
  }
  out.push('');
  return out;
}

/**
 * Re-scores a run's automatic η offline, from the gains and distances results.json keeps:
 *
 *   node dist/eval/imagicEta.js RESULTS.json [--fidelity 0,0.5,1] [--grid 0.5,0.6,0.7,0.8,0.9,1]
 *
 * prints the rows of each fine-tune for each fidelity weight (the grid a part of ETA_GRID).
 */
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [path, ...rest] = process.argv.slice(2);
  if (!path) {
    process.stderr.write('usage: node dist/eval/imagicEta.js RESULTS.json [--fidelity A,B,…] [--grid η,η,…]\n');
    process.exit(2);
  }
  const list = (flag: string, fallback: number[]) => {
    const i = rest.indexOf(flag);
    return i < 0 ? fallback : rest[i + 1].split(',').map(Number);
  };
  const saved = JSON.parse(readFileSync(path, 'utf8')) as {
    imagicEta: { cases: ImagicEtaCase[]; auto?: { etas: number[]; fidelity: number } };
  };
  const grid = list('--grid', saved.imagicEta.auto?.etas ?? [0.5, 0.6, 0.7, 0.8, 0.9, 1]);
  for (const fidelity of list('--fidelity', [saved.imagicEta.auto?.fidelity ?? 0.5])) {
    for (const ft of FINETUNES) {
      const mine = saved.imagicEta.cases.filter((c) => c.finetune === ft.name);
      for (const row of summaryRows(ft.name, mine, fidelity, grid).slice(2))
        process.stdout.write(
          `fidelity ${fidelity}, grid ${grid.join(',')}, ${ft.name}: ${row.how} ${row.eta}: ${row.ok.filter(Boolean).length}/${row.n}\n`,
        );
    }
  }
}
