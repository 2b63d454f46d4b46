/**
 * `npm run eval`: the strict evaluation (issue 15) of a torchedit bundle on held-out scenes.py pictures.
 *
 *   npm run eval [-- --model DIR --quick --cases N --imagic-cases N --out DIR --only LIST --keep]
 *
 * What is measured, and the one definition of a strict success, are in eval/README.md; the
 * definition's code is eval/strict.py (score_edit), the only place it exists. This file runs the
 * model as a user would (every option at the model's defaults, `model.defaults`: the library's,
 * replaced by model.json `recommended`) and hands the pictures to Python:
 *
 *  1. cases      eval/cases.py: held-out one-object cases (every background, shape and size in
 *                turn) and two-object cases (two different shapes), scenes.py indices ≥ 1e9.
 *  2. validate   eval/validate.py: the analyser against ground truth on VAE round trips (the
 *                model's own VAE), with its confusion matrix; target ≥ 98% agreement.
 *  3. t2i        text-to-image from each case's full caption (one and two objects), seed = index.
 *  4. ledits     invert (seed = index) and edit, as typed: "+new", "+new −old", a target prompt
 *                (source prompt = the caption, target = the caption with the colour replaced),
 *                "+a <new> <shape>" on one of two objects; reconstruction (no edit) vs the input.
 *  5. imagic     model.imagic(input, target caption) then generate() at the recommended η.
 * Each row is reported pooled, per background and per shape; RESULTS.md holds every number and
 * contact-sheet.png the pairs, failures first, labelled with what failed.
 *
 * Why .npy: Debian's libtorch links OpenCV → GTK → the system's GLib, and sharp brings its own
 * libvips GLib; once the addon is loaded, every sharp operation in the process prints
 * "GLib-GObject-CRITICAL" lines. So this process never runs sharp: pictures go to Python as .npy
 * and the contact sheet is composed by eval/sheet.ts in a child process without the addon.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { configure, defaultModelPath, type EditOptions, loadModel, runtimeInfo, type StableDiffusionModel } from '../lib/index.js';
import { imageTensor, tensorImage } from './heldout.js';
import type { EtaGridSpec } from './etaGrid.js';
import { ETA_GRID, FINETUNES, type ImagicEtaResult, imagicEtaMarkdown, imagicEtaSection } from './imagicEta.js';
import { type LeditsppResult, leditsppMarkdown, leditsppSection } from './leditspp.js';
import { imageAt, readNpyImages, writeNpyImages } from './npy.js';
import { mean, median, python, repoRoot } from './score.js';
import type { SheetPair, SheetSpec } from './sheet.js';

// ------------------------------------------------------------------------------------ options

type Section = 'validate' | 't2i' | 'ledits' | 'leditspp' | 'imagic' | 'imagic-eta';
const SECTIONS: Section[] = ['validate', 't2i', 'ledits', 'leditspp', 'imagic', 'imagic-eta'];
/** What a run without --only runs: imagic-eta (two fine-tunes and a sweep of 9 η per case) only when named. */
const DEFAULT_SECTIONS = SECTIONS.filter((s) => s !== 'imagic-eta');

export interface Options {
  model: string;
  /** Cases per row (one-object and two-object sets alike). */
  cases: number;
  imagicCases: number;
  /** Analyser validation: scenes.py pictures, and pictures per extra group (concave, tiny, huge, non-shapes). */
  validateN: number;
  validateExtra: number;
  quick: boolean;
  out: string;
  only: Set<Section>;
  keep: boolean;
  /** Cases of the optional settings sweep (tuning index range; 0: no sweep). */
  sweep: number;
  /** The imagic-eta section runs on the tuning cases (eval/cases.py --set tuning), for choosing chooseEta's settings. */
  tuning: boolean;
}

function usage(message?: string): never {
  if (message) process.stderr.write(`eval: ${message}\n`);
  process.stderr.write(
    'usage: node dist/eval/run.js [--model DIR] [--quick] [--cases N] [--imagic-cases N] [--validate N,EXTRA]\n' +
      '                          [--out DIR] [--only validate,t2i,ledits,leditspp,imagic,imagic-eta] [--keep] [--sweep N] [--tuning]\n',
  );
  process.exit(2);
}

export function parseArgs(argv: string[]): Options {
  let cases: number | undefined;
  let imagicCases: number | undefined;
  let validate: [number, number] | undefined;
  let out: string | undefined;
  let model = defaultModelPath;
  let quick = false;
  let keep = false;
  let sweep = 0;
  let tuning = false;
  let only = new Set<Section>(DEFAULT_SECTIONS);
  const int = (name: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) usage(`${name} needs an integer ≥ ${min}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--model') model = resolve(value());
    else if (a === '--cases') cases = int(a, value(), 1);
    else if (a === '--imagic-cases') imagicCases = int(a, value(), 0);
    else if (a === '--validate') {
      const [n, e] = value().split(',');
      validate = [int(a, n, 1), int(a, e ?? '0', 0)];
    } else if (a === '--quick') quick = true;
    else if (a === '--out') out = resolve(value());
    else if (a === '--keep') keep = true;
    else if (a === '--sweep') sweep = int(a, value(), 1);
    else if (a === '--tuning') tuning = true;
    else if (a === '--only') {
      const names = value().split(',');
      for (const n of names) if (!SECTIONS.includes(n as Section)) usage(`unknown section ${n} (sections: ${SECTIONS.join(', ')})`);
      only = new Set(names as Section[]);
    } else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  const n = cases ?? (quick ? 10 : 50);
  const name = basename(model);
  return {
    model,
    quick,
    keep,
    sweep,
    tuning,
    only,
    cases: n,
    imagicCases: Math.min(imagicCases ?? (quick ? 2 : 25), n),
    validateN: validate?.[0] ?? (quick ? 60 : 400),
    validateExtra: validate?.[1] ?? (quick ? 6 : 40),
    out: out ?? (quick ? join(tmpdir(), `torchedit-eval-quick-${name}`) : join(repoRoot, 'eval', 'results', name)),
  };
}

// ------------------------------------------------------------------------------------ cases

/** A held-out case (eval/cases.py). */
export interface Case {
  index: number;
  attrs: {
    index: number;
    n: number;
    bg: string;
    objects: { shape: string; color: string; r: number; pos: string; cx: number; cy: number }[];
  };
  caption: string;
  edit: { object: number; color: string };
  old: string;
  new: string;
  shape: string;
  target: string;
  bg: string;
  size: string;
}

interface CaseSets {
  one: Case[];
  two: Case[];
  oneImages: Uint8Array[];
  twoImages: Uint8Array[];
}

const BACKGROUNDS = ['black', 'dark gray', 'gray', 'light gray', 'white', 'sky blue', 'beige', 'light pink', 'pale green', 'lavender'];
const SHAPES = ['circle', 'square', 'triangle'];
const SIZES = ['small', 'medium', 'large'];

function py(args: string[], what: string): string {
  const r = spawnSync(python, args, { encoding: 'utf8', maxBuffer: 512 << 20, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr || r.error}`);
  return r.stdout;
}

const evalPy = (name: string) => join(repoRoot, 'eval', name);

function makeCases(dir: string, n: number, set: 'reported' | 'tuning' = 'reported'): CaseSets {
  py([evalPy('cases.py'), '--out', dir, '--n', String(n), '--set', set], 'eval/cases.py');
  const json = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as { one: Case[]; two: Case[] };
  const load = (name: string) => {
    const b = readNpyImages(join(dir, `${name}.npy`));
    return Array.from({ length: b.n }, (_, k) => imageAt(b, k));
  };
  return { one: json.one, two: json.two, oneImages: load('one'), twoImages: load('two') };
}

// ------------------------------------------------------------------------------------ scoring

/** eval/strict.py score_edit's output for one edit. */
export interface EditScore {
  i: number;
  strict: boolean;
  reason: string;
  checks: { count: boolean; color: boolean; shape: boolean; moved: boolean; background: boolean };
  bg_psnr: number;
  psnr: number;
  n_result: number;
  objects: { shift: number | null; color: string | null; shape: string | null }[];
  edited: { color_ok: boolean; shape_ok: boolean; moved_ok: boolean; shift: number | null };
}

interface T2iScore {
  i: number;
  count_ok: boolean;
  n_result: number;
  all_objects_ok: boolean;
  color_ok: boolean;
  shape_ok: boolean;
  pos_ok: boolean;
  bg_ok: boolean;
  bg: string;
  reason: string;
}

function jsonLines<T>(out: string): T[] {
  return out
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{"i"'))
    .map((l) => JSON.parse(l.replace(/\bNaN\b/g, 'null').replace(/-?\bInfinity\b/g, 'null')) as T);
}

export class Scorer {
  constructor(readonly work: string) {}

  npy(name: string): string {
    return join(this.work, `${name}.npy`);
  }

  write(name: string, images: Uint8Array[]): string {
    const path = this.npy(name);
    writeNpyImages(path, images, 64, 64);
    return path;
  }

  edits(name: string, cases: Case[], sources: Uint8Array[], results: Uint8Array[]): EditScore[] {
    const casesPath = join(this.work, `${name}.cases.json`);
    writeFileSync(casesPath, JSON.stringify(cases.map((c) => ({ attrs: c.attrs, edit: c.edit }))));
    const src = this.write(`${name}.src`, sources);
    const res = this.write(name, results);
    const rows = jsonLines<EditScore>(py([evalPy('strict.py'), 'edits', casesPath, src, res], `eval/strict.py edits (${name})`));
    if (rows.length !== cases.length) throw new Error(`${name}: ${rows.length} scores for ${cases.length} cases`);
    return rows;
  }

  t2i(name: string, cases: Case[], images: Uint8Array[]): T2iScore[] {
    const casesPath = join(this.work, `${name}.cases.json`);
    writeFileSync(casesPath, JSON.stringify(cases.map((c) => ({ attrs: c.attrs }))));
    const path = this.write(name, images);
    const rows = jsonLines<T2iScore>(py([evalPy('strict.py'), 't2i', casesPath, path], `eval/strict.py t2i (${name})`));
    if (rows.length !== cases.length) throw new Error(`${name}: ${rows.length} scores for ${cases.length} cases`);
    return rows;
  }

  psnr(name: string, a: Uint8Array[], b: Uint8Array[]): number[] {
    const pa = this.write(`${name}.ref`, a);
    const pb = this.write(name, b);
    return jsonLines<{ i: number; psnr: number }>(py([evalPy('strict.py'), 'psnr', pa, pb], `eval/strict.py psnr (${name})`)).map(
      (r) => r.psnr,
    );
  }
}

// ------------------------------------------------------------------------------------ report

const fmt = {
  pct: (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : 'n/a'),
  db: (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)} dB` : 'n/a'),
  px: (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)} px` : 'n/a'),
  s: (ms: number) => `${(ms / 1000).toFixed(1)} s`,
  frac: (ok: number, n: number) => (n === 0 ? '–' : `${ok}/${n}`),
};

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

interface Row {
  measure: string;
  n: number;
  value: string;
  target: string;
  pass: boolean | null;
}

/** One measured row with a per-case outcome, broken down per background, per shape and per size. */
interface Breakdown {
  label: string;
  ok: boolean[];
  /** Background of each case. */
  bg: string[];
  /** Shapes of each case (a two-object case counts under each of its shapes). */
  shapes: string[][];
  /** Size words (scenes.py: small r < 8.5, medium, large r ≥ 14) of each case's objects. */
  sizes: string[][];
}

function tally(ok: boolean[], keys: string[][], universe: string[]): Map<string, [number, number]> {
  const m = new Map<string, [number, number]>(universe.map((k) => [k, [0, 0]]));
  ok.forEach((v, i) => {
    for (const k of new Set(keys[i])) {
      const t = m.get(k) ?? [0, 0];
      t[0] += v ? 1 : 0;
      t[1] += 1;
      m.set(k, t);
    }
  });
  return m;
}

function share(ok: boolean[]): number {
  return ok.length ? ok.filter(Boolean).length / ok.length : NaN;
}

/** The lowest share among backgrounds with cases: [share, background]. */
function worstBackground(b: Breakdown): [number, string] {
  let worst: [number, string] = [Infinity, ''];
  for (const [k, [ok, n]] of tally(
    b.ok,
    b.bg.map((x) => [x]),
    BACKGROUNDS,
  ))
    if (n > 0 && ok / n < worst[0]) worst = [ok / n, k];
  return worst;
}

function tableMarkdown(rows: Row[]): string {
  const lines = ['| measure | n | value | target | result |', '| --- | ---: | ---: | ---: | --- |'];
  for (const r of rows)
    lines.push(`| ${r.measure} | ${r.n} | ${r.value} | ${r.target} | ${r.pass === null ? '' : r.pass ? 'pass' : '**miss**'} |`);
  return lines.join('\n');
}

function breakdownMarkdown(rows: Breakdown[], by: 'background' | 'shape' | 'size'): string {
  const universe = by === 'background' ? BACKGROUNDS : by === 'shape' ? SHAPES : SIZES;
  const lines = [`| measure | ${universe.join(' | ')} |`, `| --- | ${universe.map(() => '---:').join(' | ')} |`];
  for (const b of rows) {
    const t = tally(b.ok, by === 'background' ? b.bg.map((x) => [x]) : by === 'shape' ? b.shapes : b.sizes, universe);
    lines.push(`| ${b.label} | ${universe.map((k) => fmt.frac(...(t.get(k) ?? [0, 0]))).join(' | ')} |`);
  }
  return lines.join('\n');
}

function row(measure: string, n: number, value: number, shown: string, op: '≥' | '≤', target: number, targetShown: string): Row {
  const pass = Number.isFinite(value) && (op === '≥' ? value >= target : value <= target);
  return { measure, n, value: shown, target: `${op} ${targetShown}`, pass };
}

/** Reasons of the failures, most common first: "colour none ×3, bg 22.1dB ×1" with numbers bucketed. */
function reasonCounts(reasons: string[]): string {
  const counts = new Map<string, number>();
  for (const r of reasons) {
    if (!r) continue;
    for (const part of r.split(', ')) {
      const key = part.replace(/moved [0-9.]+px/, 'moved ≥ 4 px').replace(/bg [0-9.]+dB/, 'bg < 25 dB');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return (
    [...counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ×${v}`)
      .join(', ') || 'none'
  );
}

// ------------------------------------------------------------------------------------ run

interface SectionTime {
  name: string;
  ms: number;
  cpuMs: number;
}

function shown(path: string): string {
  const r = relative(repoRoot, path);
  return r && !r.startsWith('..') ? r : path;
}

const timesText = (times: SectionTime[]) => times.map((t) => `${t.name} ${fmt.s(t.ms)} (CPU ${fmt.s(t.cpuMs)})`).join(', ');

/** An edit row: its results, scores and the settings it was made with. */
interface EditRow {
  id: string;
  label: string;
  /** What the user types, for the report. */
  form: string;
  cases: Case[];
  sources: Uint8Array[];
  results: Uint8Array[];
  scores: EditScore[];
}

export async function run(o: Options): Promise<void> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const startedAt = new Date();
  const load0 = loadavg()[0];
  configure({ threads: 1 });
  const work = mkdtempSync(join(tmpdir(), 'torchedit-eval-'));
  mkdirSync(o.out, { recursive: true });
  log(
    `torchedit strict evaluation — model ${o.model}, ${o.cases} cases per row, Imagic ${o.imagicCases}${o.quick ? ', quick' : ''}; work files in ${work}`,
  );
  const unknownWords = new Set<string>();
  const model = await loadModel(o.model, {
    onWarning: (w) => {
      for (const word of w.words ?? []) unknownWords.add(word);
    },
  });
  const d = model.defaults;
  log(`model "${model.config.name}" loaded; libtorch ${runtimeInfo().torchVersion}, 1 thread`);
  if (model.imageSize !== 64)
    throw new Error(`the evaluation's pictures are 64×64; ${o.model} makes ${model.imageSize}×${model.imageSize}`);

  const times: SectionTime[] = [];
  const timed = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
    const t = performance.now();
    const cpu = process.cpuUsage();
    const value = await f();
    const ms = performance.now() - t;
    const used = process.cpuUsage(cpu);
    times.push({ name, ms, cpuMs: (used.user + used.system) / 1000 });
    log(`  [${name}: ${fmt.s(ms)}, CPU ${fmt.s((used.user + used.system) / 1000)}]`);
    return value;
  };

  const sets = await timed('held-out cases', () => makeCases(join(work, 'cases'), o.cases));
  const scorer = new Scorer(work);
  const rows: Row[] = [];
  const breakdowns: Breakdown[] = [];
  const details: string[] = [];
  const sheet: SheetSpec = {
    out: join(o.out, 'contact-sheet.png'),
    title: `torchedit strict evaluation — ${model.config.name} (${shown(o.model)}), ${startedAt.toISOString().slice(0, 16)}Z${o.quick ? ', QUICK' : ''}: failures first`,
    rows: [],
  };
  const SHEET_PAIRS = 12;
  const perCase: Record<string, unknown[]> = {};
  const oneBg = sets.one.map((c) => c.bg);
  const oneShapes = sets.one.map((c) => [c.shape]);
  const twoBg = sets.two.map((c) => c.bg);
  const twoShapes = sets.two.map((c) => c.attrs.objects.map((x) => x.shape));
  const oneSizes = sets.one.map((c) => [c.size]);
  const twoSizes = sets.two.map((c) => c.attrs.objects.map((x) => sizeWord(x.r)));
  const sourceNpy = scorer.write('one-sources', sets.oneImages);
  const twoSourceNpy = scorer.write('two-sources', sets.twoImages);

  /** Sheet pairs, failures first (then in case order), at most SHEET_PAIRS. */
  const sheetPairs = (before: string, after: string, ok: boolean[], caption: (k: number) => string): SheetPair[] =>
    ok
      .map((v, k) => ({ v, k }))
      .sort((a, b) => Number(a.v) - Number(b.v) || a.k - b.k)
      .slice(0, SHEET_PAIRS)
      .map(({ v, k }) => ({ before: [before, k], after: [after, k], caption: caption(k), ok: v }));

  // ---------------------------------------------------------------- 1. analyser validation
  let validation: Validation | null = null;
  if (o.only.has('validate')) {
    validation = await timed('analyser validation', () => {
      const out = join(work, 'validation');
      py(
        [evalPy('validate.py'), '--model', o.model, '--n', String(o.validateN), '--extra', String(o.validateExtra), '--out', out],
        'eval/validate.py',
      );
      return JSON.parse(readFileSync(join(out, 'validation.json'), 'utf8')) as Validation;
    });
    const v = validation.roundtrips;
    rows.push(
      row(
        `analyser validation: shape agreement on VAE round trips (${validation.n_pictures - (validation.groups.nonshape ?? 0)} pictures)`,
        v.objects,
        v.agreement,
        fmt.pct(v.agreement),
        '≥',
        0.98,
        '98%',
      ),
    );
    log(
      `analyser: shape agreement on round trips ${fmt.pct(v.agreement)} (${v.objects} objects); originals ${fmt.pct(validation.originals.agreement)}`,
    );
    const misses = v.misses.slice(0, SHEET_PAIRS);
    sheet.rows.push({
      label: `Analyser validation misses (original | ${model.config.name} VAE round trip), ${v.misses.length} of ${v.objects} objects`,
      pairs: misses.map((m) => ({
        before: [join(work, 'validation', 'validation-originals.npy'), m.i] as [string, number],
        after: [join(work, 'validation', 'validation-roundtrips.npy'), m.i] as [string, number],
        caption: `${m.truth} r ${m.r} (${m.group})\n✗ read ${m.got}`,
        ok: false,
      })),
    });
  }

  // ---------------------------------------------------------------- 2. text-to-image
  if (o.only.has('t2i')) {
    await timed('text-to-image', async () => {
      const gen = async (cases: Case[]) => {
        const out: Uint8Array[] = [];
        for (const c of cases) {
          using g = await model.generate(c.caption, { seed: c.index });
          out.push(g.image.raw());
        }
        return out;
      };
      const one = await gen(sets.one);
      const two = await gen(sets.two);
      const s1 = scorer.t2i('t2i-one', sets.one, one);
      const s2 = scorer.t2i('t2i-two', sets.two, two);
      perCase.t2iOne = s1;
      perCase.t2iTwo = s2;
      const measures: [string, (s: T2iScore) => boolean, number][] = [
        ['colour', (s) => s.color_ok, 0.98],
        ['shape', (s) => s.shape_ok, 0.95],
        ['position', (s) => s.pos_ok, 0.95],
        ['background', (s) => s.bg_ok, 0.95],
      ];
      for (const [name, f, target] of measures) {
        const ok = s1.map(f);
        rows.push(
          row(`text-to-image, one object: prompted ${name}`, ok.length, share(ok), fmt.pct(share(ok)), '≥', target, `${target * 100}%`),
        );
        breakdowns.push({ label: `t2i one object: ${name}`, ok, bg: oneBg, shapes: oneShapes, sizes: oneSizes });
      }
      const allOne = s1.map((s) => s.all_objects_ok && s.bg_ok);
      const both = s2.map((s) => s.all_objects_ok);
      rows.push(
        row(
          'text-to-image, two objects: both objects right (colour, shape, position; 2 objects)',
          both.length,
          share(both),
          fmt.pct(share(both)),
          '≥',
          0.8,
          '80%',
        ),
      );
      breakdowns.push({ label: 't2i two objects: both right', ok: both, bg: twoBg, shapes: twoShapes, sizes: twoSizes });
      details.push(
        `Text-to-image: prompt = the case's full caption (scenes.full_caption, e.g. "${sets.one[0]?.caption}"; two objects: "${sets.two[0]?.caption}"), the model's defaults (DDIM ${d.textToImage.steps} steps, CFG ${d.textToImage.guidanceScale}), seed = the scene index. One object, everything right (one object, colour, shape, position, background): ${fmt.pct(share(allOne))}; object count right: ${fmt.pct(share(s1.map((s) => s.count_ok)))}. Two objects, count right: ${fmt.pct(share(s2.map((s) => s.count_ok)))}. Failures: one object — ${reasonCounts(s1.map((s) => s.reason))}; two objects — ${reasonCounts(s2.map((s) => s.reason))}.`,
      );
      log(
        `text-to-image: one object ${measures.map(([n, f]) => `${n} ${fmt.pct(share(s1.map(f)))}`).join(', ')}; two objects both right ${fmt.pct(share(both))}`,
      );
      const t1 = scorer.write('t2i-one', one);
      const t2 = scorer.write('t2i-two', two);
      sheet.rows.push({
        label: 'Text-to-image, one object (held-out picture of the prompt | sample)',
        pairs: sheetPairs(
          sourceNpy,
          t1,
          allOne,
          (k) => `${sets.one[k].attrs.objects[0].color} ${sets.one[k].shape}, ${sets.one[k].bg}\n${s1[k].reason || '✓'}`,
        ),
      });
      sheet.rows.push({
        label: 'Text-to-image, two objects (held-out picture of the prompt | sample)',
        pairs: sheetPairs(
          twoSourceNpy,
          t2,
          both,
          (k) => `${sets.two[k].attrs.objects.map((x) => x.shape).join('+')}, ${sets.two[k].bg}\n${s2[k].reason || '✓'}`,
        ),
      });
    });
  }

  // ---------------------------------------------------------------- 3. LEDITS at the model's defaults
  const editRows: EditRow[] = [];
  if (o.only.has('ledits')) {
    await timed('LEDITS', async () => {
      const n = sets.one.length;
      const res: Record<string, Uint8Array[]> = {
        rec: [],
        plus: [],
        plusMinus: [],
        target: [],
        targetNoSource: [],
        recTarget: [],
        named: [],
      };
      const edit = async (
        inv: { edit: (o: EditOptions) => Promise<{ image: { raw(): Uint8Array }; [Symbol.dispose](): void }> },
        opts: EditOptions,
      ) => {
        using r = await inv.edit(opts);
        return r.image.raw();
      };
      for (let k = 0; k < n; k++) {
        const c = sets.one[k];
        {
          // as typed: torchedit edit in.png --concept +new [--concept -old] --seed S (no source prompt)
          using x = imageTensor(sets.oneImages[k], 64, 64);
          using inv = await model.invert(x, { seed: c.index });
          res.rec.push(await edit(inv, {}));
          res.plus.push(await edit(inv, { concepts: [{ prompt: c.new }] }));
          res.plusMinus.push(await edit(inv, { concepts: [{ prompt: c.new }, { prompt: c.old, remove: true }] }));
          res.targetNoSource.push(await edit(inv, { targetPrompt: c.target }));
        }
        {
          // as typed: torchedit edit in.png --source-prompt "<caption>" --target "<caption, colour replaced>" --seed S
          using x = imageTensor(sets.oneImages[k], 64, 64);
          using inv = await model.invert(x, { sourcePrompt: c.caption, seed: c.index });
          res.target.push(await edit(inv, { targetPrompt: c.target }));
          res.recTarget.push(await edit(inv, { targetPrompt: c.caption }));
        }
        if ((k + 1) % 10 === 0) log(`  LEDITS one object ${k + 1}/${n}`);
      }
      for (let k = 0; k < sets.two.length; k++) {
        const c = sets.two[k];
        using x = imageTensor(sets.twoImages[k], 64, 64);
        using inv = await model.invert(x, { seed: c.index });
        res.named.push(await edit(inv, { concepts: [{ prompt: `a ${c.new} ${c.shape}` }] }));
        if ((k + 1) % 10 === 0) log(`  LEDITS two objects ${k + 1}/${sets.two.length}`);
      }

      // reconstruction against the input
      const rec = scorer.psnr('ledits-rec', sets.oneImages, res.rec);
      const recT = scorer.psnr('ledits-rec-target', sets.oneImages, res.recTarget);
      const vae = await vaeRoundTrips(model, sets.oneImages);
      const vaePsnr = scorer.psnr('vae', sets.oneImages, vae);
      perCase.reconstruction = rec.map((p, k) => ({ i: k, psnr: p, targetSetting: recT[k], vaeRoundTrip: vaePsnr[k] }));
      rows.push(row('LEDITS reconstruction PSNR vs the input (no edit; mean)', rec.length, mean(rec), fmt.db(mean(rec)), '≥', 30, '30 dB'));
      breakdowns.push({ label: 'reconstruction ≥ 30 dB', ok: rec.map((p) => p >= 30), bg: oneBg, shapes: oneShapes, sizes: oneSizes });
      details.push(
        `Reconstruction (invert, then edit with nothing: no concepts, no target; skip ${d.edit.skipFraction} of ${d.inversion.steps} steps) vs the input: mean ${fmt.db(mean(rec))}, median ${fmt.db(median(rec))}, min ${fmt.db(Math.min(...rec))}, ${fmt.pct(share(rec.map((p) => p >= 30)))} of cases ≥ 30 dB; per background (mean) ${BACKGROUNDS.map((b) => `${b} ${meanWhere(rec, oneBg, b)}`).join(', ')}. The VAE round trip alone (encodeImage → decodeLatents, the ceiling): mean ${fmt.db(mean(vaePsnr))}, min ${fmt.db(Math.min(...vaePsnr))}. With the target-prompt setting (source = caption, target = the same caption, guidance ${d.edit.guidanceScale}): mean ${fmt.db(mean(recT))}, min ${fmt.db(Math.min(...recT))}.`,
      );
      const recNpy = scorer.write('ledits-rec-sheet', res.rec);
      sheet.rows.push({
        label: 'LEDITS reconstruction (no edit) vs input',
        pairs: sheetPairs(
          sourceNpy,
          recNpy,
          rec.map((p) => p >= 30),
          (k) => `${sets.one[k].bg}\n${rec[k].toFixed(1)} dB`,
        ),
      });

      const specs: [string, string, string, Case[], Uint8Array[], Uint8Array[]][] = [
        ['plus', 'LEDITS "+new"', '--concept +blue', sets.one, sets.oneImages, res.plus],
        ['plusMinus', 'LEDITS "+new −old"', '--concept +blue --concept -red', sets.one, sets.oneImages, res.plusMinus],
        [
          'target',
          'LEDITS target prompt',
          '--source-prompt "<caption>" --target "<caption, colour replaced>"',
          sets.one,
          sets.oneImages,
          res.target,
        ],
        [
          'targetNoSource',
          'LEDITS target prompt, no source prompt',
          '--target "<caption, colour replaced>"',
          sets.one,
          sets.oneImages,
          res.targetNoSource,
        ],
        ['named', 'LEDITS "+a new shape", one of two objects', '--concept "+a green square"', sets.two, sets.twoImages, res.named],
      ];
      for (const [id, label, form, cases, sources, results] of specs) {
        const scores = scorer.edits(`ledits-${id}`, cases, sources, results);
        editRows.push({ id, label, form, cases, sources, results, scores });
      }
      for (const r of editRows) reportEdit(r, rows, breakdowns, details, perCase);
      for (const r of editRows) {
        const srcNpy = r.cases === sets.two ? twoSourceNpy : sourceNpy;
        sheet.rows.push({
          label: `${r.label} (${r.form})`,
          pairs: sheetPairs(
            srcNpy,
            scorer.npy(`ledits-${r.id}`),
            r.scores.map((s) => s.strict),
            (k) => editCaption(r.cases[k], r.scores[k]),
          ),
        });
      }
    });
  }

  // ---------------------------------------------------------------- LEDITS++ masks × schedulers
  let leditspp: LeditsppResult | null = null;
  if (o.only.has('leditspp')) {
    leditspp = await timed('LEDITS++ masks', () => leditsppSection(model, sets.one, sets.oneImages, scorer, sourceNpy, log));
    sheet.rows.push(...leditspp.sheetRows);
  }

  // ---------------------------------------------------------------- 4. Imagic at the recommended η
  if (o.only.has('imagic') && o.imagicCases > 0) {
    await timed('Imagic', async () => {
      const cases = sets.one.slice(0, o.imagicCases);
      const sources = sets.oneImages.slice(0, o.imagicCases);
      const results: Uint8Array[] = [];
      const t = performance.now();
      for (const [k, c] of cases.entries()) {
        using x = imageTensor(sources[k], 64, 64);
        using trained = await model.imagic(x, c.target, { seed: c.index });
        using g = await trained.generate({ seed: c.index });
        results.push(g.image.raw());
        log(`  Imagic ${k + 1}/${cases.length}`);
      }
      const scores = scorer.edits('imagic', cases, sources, results);
      const r: EditRow = {
        id: 'imagic',
        label: `Imagic at η ${d.imagicGenerate.eta}`,
        form: `torchedit imagic in.png --target "<caption, colour replaced>"`,
        cases,
        sources,
        results,
        scores,
      };
      editRows.push(r);
      reportEdit(r, rows, breakdowns, details, perCase);
      details.push(
        `Imagic: model.imagic(input, target) at the model's defaults (embedding ${d.imagic.embedding.steps} steps @ ${d.imagic.embedding.lr}, fine-tune ${d.imagic.finetune.steps} steps @ ${d.imagic.finetune.lr}), seed = the scene index; then generate() at η ${d.imagicGenerate.eta}, DDIM ${d.imagicGenerate.steps} steps, CFG ${d.imagicGenerate.guidanceScale}; ${fmt.s((performance.now() - t) / Math.max(1, cases.length))} per case; the first ${cases.length} one-object cases.`,
      );
      sheet.rows.push({
        label: `${r.label} (${r.form})`,
        pairs: sheetPairs(
          sourceNpy,
          scorer.npy('imagic'),
          scores.map((s) => s.strict),
          (k) => editCaption(cases[k], scores[k]),
        ),
      });
    });
  }

  // ---------------------------------------------------------------- Imagic: η and fine-tuned parameters
  let imagicEta: ImagicEtaResult | null = null;
  if (o.only.has('imagic-eta') && o.imagicCases > 0) {
    imagicEta = await timed('Imagic η', async () => {
      const set = o.tuning ? makeCases(join(work, 'tuning'), o.imagicCases, 'tuning') : sets;
      const cases = set.one.slice(0, o.imagicCases);
      const sources = set.oneImages.slice(0, o.imagicCases);
      const r = await imagicEtaSection(model, cases, sources, scorer, o.tuning ? 'tuning' : 'reported', log);
      for (const x of r.rows) {
        rows.push({
          measure: `Imagic, fine-tune ${x.finetune}: ${x.how} (${x.eta})`,
          n: x.n,
          value: fmt.pct(x.strict),
          target: '',
          pass: null,
        });
        breakdowns.push({
          label: `Imagic ${x.finetune}, ${x.how}: strict`,
          ok: x.ok,
          bg: cases.map((c) => c.bg),
          shapes: cases.map((c) => [c.shape]),
          sizes: cases.map((c) => [c.size]),
        });
      }
      const srcNpy = scorer.write('imagic-eta-sources', sources);
      for (const ft of FINETUNES) {
        const mine = r.cases.filter((c) => c.finetune === ft.name);
        sheet.rows.push({
          label: `Imagic η: fine-tune ${ft.name}, automatic η (chooseEta)`,
          pairs: mine.slice(0, SHEET_PAIRS).map((c, k) => {
            const i = ETA_GRID.indexOf(c.autoEta);
            return {
              before: [srcNpy, k],
              after: [r.npy[ft.name][i], k],
              caption: `${cases[k].old}→${cases[k].new}, η ${c.autoEta}`,
              ok: c.strict[i],
            };
          }),
        });
      }
      const gridSpec: EtaGridSpec = {
        out: join(o.out, 'eta-grid.png'),
        title: `Imagic on ${model.config.name}: one sweep over η per case (seed = the case); box = chooseEta's choice, ✓ = strict success`,
        etas: ETA_GRID,
        rows: FINETUNES.flatMap((ft) =>
          cases.slice(0, 3).map((c, k) => {
            const rec = r.cases.find((x) => x.finetune === ft.name && x.index === c.index)!;
            return {
              label: [`${c.old} → ${c.new} ${c.shape}`, `fine-tune: ${ft.name}`],
              input: [srcNpy, k] as [string, number],
              tiles: r.npy[ft.name].map((path) => [path, k] as [string, number]),
              ok: rec.strict,
              chosen: ETA_GRID.indexOf(rec.autoEta),
            };
          }),
        ),
      };
      const specPath = join(work, 'eta-grid.json');
      writeFileSync(specPath, JSON.stringify(gridSpec));
      const g = spawnSync(process.execPath, [fileURLToPath(new URL('./etaGrid.js', import.meta.url)), specPath], { encoding: 'utf8' });
      if (g.status !== 0) throw new Error(`η grid failed: ${g.stderr}`);
      return r;
    });
  }

  // ---------------------------------------------------------------- 5. optional settings sweep
  const sweepLines: string[] = [];
  if (o.sweep > 0)
    await timed('settings sweep', async () => {
      const tune = makeCases(join(work, 'tuning'), o.sweep, 'tuning');
      const grid = sweepGrid(d);
      const results: Uint8Array[][] = grid.map(() => []);
      for (const [k, c] of tune.one.entries()) {
        using x = imageTensor(tune.oneImages[k], 64, 64);
        using plain = await model.invert(x, { seed: c.index });
        using captioned = await model.invert(x, { sourcePrompt: c.caption, seed: c.index });
        for (const [i, g] of grid.entries()) {
          using r = await (g.source ? captioned : plain).edit(g.options(c));
          results[i].push(r.image.raw());
        }
        log(`  sweep ${k + 1}/${tune.one.length}`);
      }
      sweepLines.push(
        `Tuning cases (eval/cases.py --set tuning: scenes.py indices TEST_START + 20,000,000 …, disjoint from the reported cases), n ${tune.one.length}; one setting changed at a time from the model's defaults. Not the reported rows: a setting chosen here must be measured again on the reported cases (put it in model.json \`recommended\` and rerun).`,
        '',
        '| form | setting | strict | colour | shape kept | moved < 4 px | background ≥ 25 dB |',
        '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
      );
      for (const [i, g] of grid.entries()) {
        const sc = scorer.edits(`sweep-${i}`, tune.one, tune.oneImages, results[i]);
        const p = (f: (s: EditScore) => boolean) => fmt.pct(share(sc.map(f)));
        sweepLines.push(
          `| ${g.form} | ${g.name} | ${p((s) => s.strict)} | ${p((s) => s.edited.color_ok)} | ${p((s) => s.checks.shape)} | ${p((s) => s.checks.moved)} | ${p((s) => s.checks.background)} |`,
        );
        log(`  sweep ${g.form} ${g.name}: strict ${p((s) => s.strict)}`);
      }
    });

  // ---------------------------------------------------------------- report
  const table = tableMarkdown(rows);
  log('');
  log(table);
  log('');
  log(`sections: ${timesText(times)}; total ${fmt.s(performance.now() - t0)}`);

  await timed('contact sheet', () => {
    const specPath = join(work, 'sheet.json');
    writeFileSync(specPath, JSON.stringify(sheet));
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('./sheet.js', import.meta.url)), specPath], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`contact sheet failed: ${r.stderr}`);
  });

  const cpu = cpus();
  const info = runtimeInfo();
  const used = process.cpuUsage(cpu0);
  const md = [
    `# Strict evaluation: ${model.config.name}`,
    '',
    `Written by \`npm run eval\` (eval/run.ts)${o.quick ? ' in **--quick** mode (a few cases per row: too few to judge the targets)' : ''}. The definition of a strict success and of every row: [eval/README.md](${relative(o.out, join(repoRoot, 'eval', 'README.md'))}). Every number, missed or not.`,
    '',
    `- date: ${startedAt.toISOString()}`,
    `- model: \`${shown(o.model)}\` (model.json name "${model.config.name}", ${model.config.sampleSize}×${model.config.sampleSize} latents)`,
    `- defaults in force (\`model.defaults\`, every option the rows do not name): inversion ${d.inversion.steps} steps, source guidance ${d.inversion.sourceGuidanceScale}; edit skip ${d.edit.skipFraction}, guidance ${d.edit.guidanceScale}, mask ${d.edit.maskMode}; concept scale ${d.concept.scale}, threshold ${d.concept.threshold}; text-to-image DDIM ${d.textToImage.steps} steps, CFG ${d.textToImage.guidanceScale}; Imagic embedding ${d.imagic.embedding.steps} @ ${d.imagic.embedding.lr}, fine-tune ${d.imagic.finetune.steps} @ ${d.imagic.finetune.lr}, η ${d.imagicGenerate.eta}`,
    `- cases: ${sets.one.length} one-object and ${sets.two.length} two-object held-out scenes.py pictures (eval/cases.py, indices TEST_START + 10,000,000 …), Imagic the first ${o.only.has('imagic') ? o.imagicCases : 0}; analyser validation ${
      validation
        ? `${validation.n_pictures} pictures (${Object.entries(validation.groups)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')})`
        : 'not run'
    }`,
    `- words of the prompts the model does not know (it reads each as one unknown word): ${unknownWords.size ? [...unknownWords].sort().join(', ') : 'none'}`,
    `- machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; Node ${process.version}; libtorch ${info.torchVersion}; 1 intra-op thread; 1-min load average at start ${load0.toFixed(2)}`,
    `- command: \`node dist/eval/run.js ${process.argv.slice(2).join(' ')}\``,
    `- time: ${timesText(times)}; total ${fmt.s(performance.now() - t0)} wall, ${fmt.s((used.user + used.system) / 1000)} CPU of this process`,
    '',
    '## Results',
    '',
    table,
    '',
    '## Per background (successes / cases)',
    '',
    breakdownMarkdown(breakdowns, 'background'),
    '',
    '## Per shape (successes / cases; a two-object case counts under each of its shapes)',
    '',
    breakdownMarkdown(breakdowns, 'shape'),
    '',
    '## Per size (successes / cases; scenes.py size words: small r < 8.5 px, medium, large r ≥ 14; a two-object case counts under each of its sizes)',
    '',
    breakdownMarkdown(breakdowns, 'size'),
    '',
    '## Details',
    '',
    ...details.map((x) => `- ${x}`),
    '',
  ];
  if (leditspp) {
    md.push(
      '## LEDITS++: masks and inversion schedulers',
      '',
      `Every one-object case, inverted once per scheduler (seed = the scene index) and edited with each concept form and mask mode at the model's other defaults (docs/algorithms.md §7; "no mask" is the noise mask at threshold 0). Strict success is the same as in the rows above; shape kept and centroid shift are the edited object's; background PSNR is the strict score's (outside the widened shape masks); seconds are this process's, one thread, the inversion's time shared by the edits of each case counted once per edit.${model.config.crossAttentionMaps ? '' : ' This bundle has no cross-attention maps: the attention and intersect rows are not run.'}`,
      '',
      ...leditsppMarkdown(leditspp.rows),
      '',
    );
  }
  if (imagicEta) {
    md.push(
      '## Imagic: the η choice, full vs subset fine-tuning',
      '',
      ...imagicEtaMarkdown(imagicEta),
      "`eta-grid.png`: the sweeps of the first three cases per fine-tune, chooseEta's choice boxed.",
      '',
    );
  }
  if (validation) md.push(...validationMarkdown(validation, model.config.name));
  if (sweepLines.length) md.push('## Settings sweep (--sweep; after the rows at the defaults)', '', ...sweepLines, '');
  md.push(
    '## Contact sheet',
    '',
    '`contact-sheet.png`: per row, up to 12 pairs (input left, result right), failures first, each captioned with the case and what failed (✓ = strict success).',
    '',
  );
  writeFileSync(join(o.out, 'RESULTS.md'), md.join('\n'));
  writeFileSync(
    join(o.out, 'results.json'),
    `${JSON.stringify({ date: startedAt.toISOString(), model: shown(o.model), quick: o.quick, rows, leditspp: leditspp?.rows.map(({ ok: _, ...r }) => r) ?? null, imagicEta: imagicEta ? { etaGrid: ETA_GRID, caseSet: imagicEta.caseSet, auto: imagicEta.auto, rows: imagicEta.rows, perEta: imagicEta.perEta, check: imagicEta.check, cases: imagicEta.cases } : null, perCase, cases: { one: sets.one.map((c) => c.index), two: sets.two.map((c) => c.index) } })}\n`,
  );
  log(`wrote ${join(o.out, 'RESULTS.md')}, ${join(o.out, 'results.json')} and ${sheet.out}`);
  model.dispose();
  if (!o.keep) rmSync(work, { recursive: true, force: true });
  else log(`work files kept in ${work}`);
}

interface SweepPoint {
  form: string;
  name: string;
  /** Inverted with the caption as source prompt (target-prompt edits) or with none. */
  source: boolean;
  options: (c: Case) => EditOptions;
}

/** One setting at a time around the model's defaults, for "+new" and for target-prompt edits. */
function sweepGrid(d: StableDiffusionModel['defaults']): SweepPoint[] {
  const out: SweepPoint[] = [];
  const concept = (skip: number, scale: number, threshold: number, name: string) =>
    out.push({ form: '"+new"', name, source: false, options: (c) => ({ skip, concepts: [{ prompt: c.new, scale, threshold }] }) });
  const target = (skip: number, guidanceScale: number, name: string) =>
    out.push({ form: 'target prompt', name, source: true, options: (c) => ({ skip, guidanceScale, targetPrompt: c.target }) });
  const { skipFraction: skip, guidanceScale } = d.edit;
  const { scale, threshold } = d.concept;
  concept(skip, scale, threshold, `defaults (skip ${skip}, scale ${scale}, threshold ${threshold})`);
  for (const v of [0.3, 0.4, 0.5, 0.6, 0.7, 0.8].filter((v) => v !== skip)) concept(v, scale, threshold, `skip ${v}`);
  for (const v of [3, 5, 7, 10, 15].filter((v) => v !== scale)) concept(skip, v, threshold, `scale ${v}`);
  for (const v of [0.8, 0.9, 0.95].filter((v) => v !== threshold)) concept(skip, scale, v, `threshold ${v}`);
  target(skip, guidanceScale, `defaults (skip ${skip}, guidance ${guidanceScale})`);
  for (const v of [0.3, 0.4, 0.5, 0.6, 0.7, 0.8].filter((v) => v !== skip)) target(v, guidanceScale, `skip ${v}`);
  for (const v of [3.5, 5, 7.5, 10, 15].filter((v) => v !== guidanceScale)) target(skip, v, `guidance ${v}`);
  return out;
}

/** scenes.size_word. */
function sizeWord(r: number): string {
  return r < 8.5 ? 'small' : r < 14 ? 'medium' : 'large';
}

function meanWhere(values: number[], keys: string[], key: string): string {
  const v = values.filter((_, i) => keys[i] === key);
  return v.length ? fmt.db(mean(v)) : '–';
}

function editCaption(c: Case, s: EditScore): string {
  return `${c.old}→${c.new} ${c.shape}, ${c.bg}\n${s.strict ? `✓ ${s.bg_psnr.toFixed(0)} dB` : s.reason}`;
}

/** The rows of one edit kind: strict pooled (target), worst background, and the checks behind it. */
function reportEdit(r: EditRow, rows: Row[], breakdowns: Breakdown[], details: string[], perCase: Record<string, unknown[]>): void {
  const ok = r.scores.map((s) => s.strict);
  const bg = r.cases.map((c) => c.bg);
  const shapes = r.cases.map((c) => c.attrs.objects.map((x) => x.shape));
  const sizes = r.cases.map((c) => c.attrs.objects.map((x) => sizeWord(x.r)));
  const b: Breakdown = { label: `${r.label}: strict`, ok, bg, shapes, sizes };
  breakdowns.push(b);
  perCase[r.id] = r.scores.map((s, k) => ({ index: r.cases[k].index, ...s }));
  const [target, bgTarget] =
    r.id === 'named' ? [0.7, null] : r.id === 'imagic' ? [0.6, null] : r.id === 'targetNoSource' ? [null, null] : [0.85, 0.75];
  const strictShare = share(ok);
  rows.push(
    target === null
      ? { measure: `${r.label}: strict success (${r.form})`, n: ok.length, value: fmt.pct(strictShare), target: '', pass: null }
      : row(`${r.label}: strict success (${r.form})`, ok.length, strictShare, fmt.pct(strictShare), '≥', target, `${target * 100}%`),
  );
  if (bgTarget !== null) {
    const [w, name] = worstBackground(b);
    rows.push(
      row(
        `${r.label}: strict success on its worst background (${name})`,
        ok.filter((_, i) => bg[i] === name).length,
        w,
        fmt.pct(w),
        '≥',
        bgTarget,
        `${bgTarget * 100}%`,
      ),
    );
  }
  const c = (f: (s: EditScore) => boolean) => fmt.pct(share(r.scores.map(f)));
  const shifts = r.scores.map((s) => s.edited.shift ?? Infinity);
  details.push(
    `${r.label} (\`${r.form}\`, n ${ok.length}): strict ${fmt.pct(strictShare)}; edited object's colour right ${c((s) => s.edited.color_ok)}, every object's colour right ${c((s) => s.checks.color)}, shape kept ${c((s) => s.checks.shape)}, centroids < 4 px ${c((s) => s.checks.moved)}, background PSNR ≥ 25 dB ${c((s) => s.checks.background)}, object count kept ${c((s) => s.checks.count)}; median shift of the edited object ${fmt.px(median(shifts))}, median background PSNR ${fmt.db(median(r.scores.map((s) => s.bg_psnr)))}. Failures: ${reasonCounts(r.scores.map((s) => s.reason))}.`,
  );
  log(
    `${r.label}: strict ${fmt.pct(strictShare)} (colour ${c((s) => s.edited.color_ok)}, shape ${c((s) => s.checks.shape)}, moved ${c((s) => s.checks.moved)}, bg ${c((s) => s.checks.background)})`,
  );
}

async function vaeRoundTrips(model: StableDiffusionModel, images: Uint8Array[]): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const img of images) {
    using x = imageTensor(img, 64, 64);
    using z = await model.encodeImage(x);
    using y = await model.decodeLatents(z);
    out.push(await tensorImage(y));
  }
  return out;
}

// ------------------------------------------------------------------------------------ validation report

interface ValidationSet {
  objects: number;
  /** Agreement over the pictures whose round trip kept PSNR ≥ db against the original. */
  faithful?: { ok: number; n: number; db: number } | null;
  pictures: number;
  agreement: number;
  confusion: Record<string, Record<string, number>>;
  by: Record<string, { ok: number; n: number }>;
  color: number;
  pos: number;
  count: number;
  bg: number;
  nonshape: Record<string, number>;
  misses: { i: number; group: string; truth: string; got: string; r: number; bg: string }[];
}

interface Validation {
  vae: string;
  n_pictures: number;
  groups: Record<string, number>;
  target: number;
  vae_psnr_mean: number;
  originals: ValidationSet;
  roundtrips: ValidationSet;
  roundtrips_old: ValidationSet;
  pass: boolean;
  seconds: number;
}

const LABELS = ['circle', 'square', 'triangle', 'other', 'missed'];
const SIZE_BINS = ['r 4-6', 'r 6-8.5', 'r 8.5-14', 'r 14-22'];
const GROUPS = ['scenes', 'concave', 'tiny', 'huge'];

function validationMarkdown(v: Validation, name: string): string[] {
  const rt = v.roundtrips;
  const line = (label: string, s: ValidationSet) =>
    `| ${label} | ${fmt.pct(s.agreement)} | ${SIZE_BINS.map((k) => fmt.frac(s.by[k]?.ok ?? 0, s.by[k]?.n ?? 0)).join(' | ')} | ${GROUPS.map((k) => fmt.frac(s.by[k]?.ok ?? 0, s.by[k]?.n ?? 0)).join(' | ')} | ${fmt.pct(s.color)} | ${fmt.pct(s.pos)} | ${fmt.pct(s.count)} | ${fmt.pct(s.bg)} | ${Object.entries(
      s.nonshape,
    )
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')} |`;
  return [
    '## Analyser validation (eval/validate.py)',
    '',
    `Held-out pictures (scenes.py indices TEST_START + 30,000,000 …) and their round trips through ${name}'s own VAE (${v.vae}; mean round-trip PSNR ${fmt.db(v.vae_psnr_mean)}), read by eval/strict.py's analyser and, for comparison, by scripts/tinysd/scene_analyze.py. Shape agreement with the generator's ground truth over ${rt.objects} objects: **${fmt.pct(rt.agreement)}** on the round trips — ${v.pass ? 'pass' : '**miss**'} (target ≥ 98%)${rt.faithful ? `; on the round trips with a whole-picture PSNR ≥ ${rt.faithful.db} dB ${fmt.frac(rt.faithful.ok, rt.faithful.n)} = ${fmt.pct(rt.faithful.ok / Math.max(1, rt.faithful.n))} (the background dominates that PSNR: a VAE can redraw a small object in a picture that keeps it, so which misses are the VAE's is seen on the contact sheet)` : ''}. ${v.seconds} s.`,
    '',
    `| pictures, analyser | shape agreement | ${SIZE_BINS.join(' | ')} | ${GROUPS.join(' | ')} | colour | position | object count | background | non-shapes read as |`,
    `| --- | ---: | ${SIZE_BINS.map(() => '---:').join(' | ')} | ${GROUPS.map(() => '---:').join(' | ')} | ---: | ---: | ---: | ---: | --- |`,
    line('originals, eval/strict.py', v.originals),
    line('VAE round trips, eval/strict.py', rt),
    line('VAE round trips, scene_analyze.py (old)', v.roundtrips_old),
    '',
    'Confusion matrix of the shapes on the VAE round trips (eval/strict.py; rows: ground truth, columns: analysed):',
    '',
    `| truth \\ read | ${LABELS.join(' | ')} |`,
    `| --- | ${LABELS.map(() => '---:').join(' | ')} |`,
    ...Object.entries(rt.confusion).map(([t, r]) => `| ${t} | ${LABELS.map((g) => r[g] ?? 0).join(' | ')} |`),
    '',
    `Misses (${rt.misses.length}${rt.misses.length > 40 ? ', the first 40' : ''}): ${
      rt.misses
        .slice(0, 40)
        .map((m) => `${m.truth}→${m.got} r ${m.r} ${m.bg} (${m.group})`)
        .join('; ') || 'none'
    }.`,
    '',
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (!existsSync(python)) {
    process.stderr.write(`eval: ${python} is needed (python3-numpy, python3-torch)\n`);
    process.exit(1);
  }
  run(parseArgs(process.argv.slice(2))).catch((error: unknown) => {
    process.stderr.write(`eval failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
