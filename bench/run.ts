/**
 * `npm run bench`: every workload through torchedit and through the plain-PyTorch user code in
 * bench/python/workloads.py, on the small bundle and the SD-structure bundle; prints the table
 * and writes it to bench/RESULTS.md with the machine it ran on; then the scaling table
 * (bench/scaling.ts) unless filtered.
 *
 *   node dist/bench/run.js [--quick] [--workload NAME[,NAME]] [--bundle small|sd] [--reps N]
 *                          [--threads T] [--no-write] [--[no-]scaling] [--autocast bfloat16]
 *
 * Defaults: both bundles, every workload, 3 repetitions (--quick: 1, and fewer steps), 1 thread
 * on both sides, RESULTS.md written, and the scaling table after a full unfiltered run.
 *
 * --autocast bfloat16: torchedit loads the model with `{ autocast: 'bfloat16' }` (its warm-up
 * and measured job both run on it); the Python side stays float32, the reference. The table goes
 * to its own RESULTS.md section (`bf16`; raw runs in bench/.cache/last-run-bf16.json), shows no
 * time targets (the issue's are at equal precision), and in place of the same-result check the
 * relative difference of the checksums: the accuracy cost. Imagic is left out unless named with
 * --workload (training under autocast is not this comparison), and no scaling table is run.
 *
 * How a number is taken: each measured job runs in a fresh child process per (side, workload,
 * repetition), the sides alternating (torchedit, Python, torchedit, Python, …). A child loads
 * the bundle, runs one warm-up job (the same shapes and code paths with 2 steps — Imagic 3 + 3 —
 * and other prompts), then the measured job, and reports
 *  - wall time of the job only (model loaded, warm-up done; includes prompt encoding of the
 *    job's new prompts, VAE encode/decode, and result packaging: what the user's call costs);
 *  - page faults during the job: minor + major, process.resourceUsage() (torchedit) or
 *    getrusage(RUSAGE_SELF) (Python) deltas, all threads; divided by the job's UNet calls;
 *  - peak RSS of the process (ru_maxrss: load + warm-up + job; a fresh process per job);
 *  - torchedit: the worst event-loop delay while the job ran (monitorEventLoopDelay, 1 ms);
 *    beside it, in parentheses, the worst delay of an idle Node process (this harness, which
 *    only waits for its child) during the torchedit job and during the Python job: the
 *    machine's own wake-up latency under that load, which torchedit's figure cannot go below.
 * UNet calls are computed from the settings (workloads.ts unetEvaluations); Python counts its
 * own and the table notes any difference. Imagic runs stage A (embedding) and stage B
 * (fine-tune) in one job; each side marks the boundary (torchedit: the last "embedding"
 * progress report) and the table has a row per stage.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  bundle,
  cacheDir,
  currentLoad,
  ensureInversion,
  fmt,
  machine,
  machineMarkdown,
  median,
  runOne,
  writeSection,
  type Bundle,
  type BundleName,
} from './measure.js';
import {
  AUTOCAST_MODES,
  stepsOf,
  unetEvaluations,
  workloads,
  type Autocast,
  type Measurement,
  type RunResult,
  type WorkloadSpec,
} from './workloads.js';

export interface Options {
  quick: boolean;
  workloads: string[] | null;
  bundles: BundleName[];
  reps: number;
  threads: number;
  write: boolean;
  scaling: boolean;
  /** torchedit's autocast dtype (--autocast); null: float32, the main table. */
  autocast: Autocast | null;
}

function usage(message?: string): never {
  if (message) process.stderr.write(`bench: ${message}\n`);
  process.stderr.write(
    'usage: node dist/bench/run.js [--quick] [--workload NAME[,NAME]] [--bundle small|sd] [--reps N] [--threads T] [--no-write] [--[no-]scaling] [--autocast bfloat16]\n' +
      `workloads: ${Object.keys(workloads(false)).join(', ')}\n` +
      `--autocast ${AUTOCAST_MODES.join('|')}: torchedit under autocast vs Python float32, in RESULTS.md's bf16 section; implies --no-scaling, leaves out imagic unless named\n`,
  );
  process.exit(2);
}

export function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false,
    workloads: null,
    bundles: ['small', 'sd'],
    reps: 0,
    threads: 1,
    write: true,
    scaling: true,
    autocast: null,
  };
  let scaling: boolean | null = null;
  const known = Object.keys(workloads(false));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--quick') o.quick = true;
    else if (a === '--no-write') o.write = false;
    else if (a === '--no-scaling') scaling = false;
    else if (a === '--scaling') scaling = true;
    else if (a === '--workload') {
      const names = value().split(',');
      for (const n of names) if (!known.includes(n)) usage(`unknown workload ${n}`);
      o.workloads = [...(o.workloads ?? []), ...names];
    } else if (a === '--bundle') {
      const b = value();
      if (b !== 'small' && b !== 'sd') usage(`--bundle is small or sd, not ${b}`);
      o.bundles = [b];
    } else if (a === '--autocast') {
      const mode = value();
      if (!(AUTOCAST_MODES as readonly string[]).includes(mode)) usage(`--autocast is ${AUTOCAST_MODES.join(' or ')}, not ${mode}`);
      o.autocast = mode as Autocast;
    } else if (a === '--reps') o.reps = Number(value());
    else if (a === '--threads') o.threads = Number(value());
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!o.reps) o.reps = o.quick ? 1 : 3;
  if (!Number.isInteger(o.reps) || o.reps < 1) usage('--reps must be a positive integer');
  if (!Number.isInteger(o.threads) || o.threads < 1) usage('--threads must be a positive integer');
  // The scaling table comes with a full, unfiltered run (--quick stays under 5 minutes without
  // it); --scaling / --no-scaling decide otherwise. --autocast implies --no-scaling: the scaling
  // table measures float32 only, and a bf16 run must not rewrite it.
  if (o.autocast && scaling) usage('--autocast implies --no-scaling (the scaling table is float32); run --scaling without --autocast');
  o.scaling = o.autocast ? false : (scaling ?? (!o.quick && !o.workloads && o.bundles.length === 2));
  return o;
}

/**
 * The workloads a run measures, in table order: --workload's, else all — except that under
 * --autocast Imagic runs only when named (training under autocast is not the comparison).
 */
export function selectedWorkloads(o: Options): string[] {
  return Object.entries(workloads(o.quick))
    .filter(([name, spec]) => (o.workloads ? o.workloads.includes(name) : !(o.autocast && spec.kind === 'imagic')))
    .map(([name]) => name);
}

export interface Entry {
  bundle: Bundle;
  name: string;
  spec: WorkloadSpec;
  torchedit: RunResult[];
  python: RunResult[];
}

/** Runs one workload `reps` times per side, alternating sides; `autocast` is torchedit's (Python runs float32). */
export async function measure(
  b: Bundle,
  name: string,
  spec: WorkloadSpec,
  reps: number,
  threads: number,
  autocast?: Autocast,
): Promise<Entry> {
  const entry: Entry = { bundle: b, name, spec, torchedit: [], python: [] };
  for (let r = 0; r < reps; r++) {
    const te = await runOne('torchedit', b, name, spec, threads, autocast);
    if (te.autocast !== autocast)
      throw new Error(`torchedit ${name}: the child ran with autocast ${te.autocast ?? 'none'}, not ${autocast ?? 'none'}`);
    entry.torchedit.push(te);
    const py = await runOne('python', b, name, spec, threads);
    entry.python.push(py);
    process.stderr.write(
      `bench: ${b.name} ${name} rep ${r + 1}/${reps}: torchedit ${fmt(te.wallSeconds)} s, Python ${fmt(py.wallSeconds)} s\n`,
    );
  }
  return entry;
}

interface Row {
  bundle: string;
  workload: string;
  evaluations: string;
  steps: number;
  te: Measurement[];
  py: Measurement[];
  pyCalls: number[];
  calls: number;
  /** Relative difference of the two sides' checksums (workloads.ts Checksum), worst over the runs. */
  agreement: number;
  /** The idle harness process's worst loop delay during each side's jobs (whole job, also for Imagic's stage rows). */
  idle: { te: number; py: number };
}

function worstIdle(e: Entry): { te: number; py: number } {
  const worst = (rs: RunResult[]) => Math.max(...rs.map((r) => r.idleLoopDelayMaxMs ?? NaN));
  return { te: worst(e.torchedit), py: worst(e.python) };
}

function agreement(e: Entry): number {
  let worst = 0;
  for (let i = 0; i < Math.min(e.torchedit.length, e.python.length); i++) {
    const a = e.torchedit[i].checksum;
    const b = e.python[i].checksum;
    if (a === undefined || b === undefined) return NaN;
    worst = Math.max(worst, Math.abs(a - b) / Math.max(Math.abs(b), 1e-12));
  }
  return worst;
}

function rows(entries: Entry[]): Row[] {
  const out: Row[] = [];
  for (const e of entries) {
    const ev = unetEvaluations(e.spec);
    const shape = (calls: number) => `${calls} × ${ev.batch}${ev.backward ? ' +bwd' : ''}`;
    if (ev.phases) {
      for (const [phase, calls] of Object.entries(ev.phases)) {
        const pick = (r: RunResult) => r.phases?.[phase];
        out.push({
          bundle: e.bundle.name,
          workload: `${e.name} ${phase === 'embedding' ? 'embedding (A)' : 'fine-tune (B)'}`,
          evaluations: shape(calls),
          steps: calls,
          calls,
          te: e.torchedit.map(pick).filter((m): m is Measurement => !!m),
          py: e.python.map(pick).filter((m): m is Measurement => !!m),
          pyCalls: e.python.map((r) => r.phases?.[phase]?.unetCalls ?? NaN),
          agreement: agreement(e),
          idle: worstIdle(e),
        });
      }
    } else {
      out.push({
        bundle: e.bundle.name,
        workload: e.name,
        evaluations: shape(ev.calls),
        steps: stepsOf(e.spec),
        calls: ev.calls,
        te: e.torchedit,
        py: e.python,
        pyCalls: e.python.map((r) => r.unetCalls ?? NaN),
        agreement: agreement(e),
        idle: worstIdle(e),
      });
    }
  }
  return out;
}

/** Both sides' results agree to 1e-3 (relative) — a check that they did the same work, not a parity test. */
function sameResult(relative: number): string {
  if (!Number.isFinite(relative)) return '?';
  return `${relative <= 1e-3 ? '✓' : '✗'} (${relative.toExponential(0)})`;
}

/**
 * Under autocast the checksums differ by bf16's rounding (about 1% per UNet call, compounding
 * over steps), so no pass threshold: the relative difference itself, the accuracy cost.
 */
function accuracyCost(relative: number): string {
  return Number.isFinite(relative) ? relative.toExponential(1) : '?';
}

const TIME_TARGET: Record<string, number> = { txt2img: 0.6, invert: 0.6, 'edit-0': 0.6, 'edit-1': 0.6, 'edit-3': 0.6, imagic: 0.8 };

/** The table; with `autocast` (torchedit's, Python float32) no time targets and the accuracy cost in the last column. */
export function table(entries: Entry[], autocast: Autocast | null = null): string {
  const last = autocast ? `relative difference vs Python float32 (${autocast} accuracy cost)` : 'same result';
  const lines = [
    `| bundle | workload | UNet calls × batch | torchedit s | Python s | torchedit/Python | s/step torchedit · Python | page faults/call torchedit · Python | peak RSS MB torchedit · Python (ratio) | worst event-loop delay ms torchedit (idle process: during torchedit's · Python's job) | targets (time · RSS · loop) | ${last} |`,
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
  ];
  const notes: string[] = [];
  for (const r of rows(entries)) {
    const teT = median(r.te.map((m) => m.wallSeconds));
    const pyT = median(r.py.map((m) => m.wallSeconds));
    const faults = (ms: Measurement[]) => median(ms.map((m) => (m.minorFaults + m.majorFaults) / r.calls));
    const rss = (ms: Measurement[]) => median(ms.map((m) => m.maxRssKB / 1024));
    const teR = rss(r.te);
    const pyR = rss(r.py);
    const loop = Math.max(...r.te.map((m) => m.loopDelayMaxMs ?? NaN));
    const ratio = teT / pyT;
    const base = r.workload.split(' ')[0];
    const timeTarget = TIME_TARGET[base];
    const mark = (ok: boolean) => (ok ? '✓' : '✗');
    const targets = [
      // The issue's time targets are at equal precision: not claimed for an autocast run.
      !autocast && r.bundle === 'sd' && timeTarget ? `≤${timeTarget} ${mark(ratio <= timeTarget)}` : '–',
      `≤1.1 ${mark(teR / pyR <= 1.1)}`,
      `≤20 ${mark(loop <= 20)}`,
    ].join(' · ');
    lines.push(
      `| ${r.bundle} | ${r.workload} | ${r.evaluations} | ${fmt(teT, 3)} | ${fmt(pyT, 3)} | ${fmt(ratio)} | ` +
        `${fmt(teT / r.steps, 3)} · ${fmt(pyT / r.steps, 3)} | ${fmt(faults(r.te), 0)} · ${fmt(faults(r.py), 0)} | ` +
        `${fmt(teR, 0)} · ${fmt(pyR, 0)} (${fmt(teR / pyR)}) | ${fmt(loop, 1)} (${fmt(r.idle.te, 1)} · ${fmt(r.idle.py, 1)}) | ${targets} | ${autocast ? accuracyCost(r.agreement) : sameResult(r.agreement)} |`,
    );
    const counted = r.pyCalls.filter((c) => c !== r.calls);
    if (counted.length)
      notes.push(`- ${r.bundle} ${r.workload}: the Python side counted ${counted.join(', ')} UNet calls where ${r.calls} were computed.`);
  }
  return `${lines.join('\n')}${notes.length ? `\n\n${notes.join('\n')}` : ''}`;
}

function describe(o: Options, entries: Entry[]): string {
  const reps = `median of ${o.reps} run${o.reps > 1 ? 's' : ''} per side`;
  const mode = o.quick
    ? '**Quick mode** (a harness check, not numbers to quote): txt2img 3 steps, inversion 4 steps, edits replay 2 of 4 steps, Imagic 2 + 2 steps; ' +
      reps +
      '.'
    : 'Full settings: txt2img 20 DDIM steps, CFG 7.5; LEDITS inversion 50 steps with a source prompt (s_src 3.5); edits over it with skip 15 (35 steps): ' +
      '`edit-0` target prompt only, `edit-1` target + 1 concept, `edit-3` 3 concepts, no target; Imagic 10 embedding + 10 fine-tune steps; ' +
      reps +
      '.';
  const bundles = [...new Map(entries.map((e) => [e.bundle.name, e.bundle])).values()].map((b) => `- ${b.label}`).join('\n');
  const precision = !o.autocast
    ? ''
    : `\n\ntorchedit loads the model with \`{ autocast: '${o.autocast}' }\` (the UNet's matrix products and convolutions ` +
      `in ${o.autocast} under libtorch's CPU autocast, the rest float32; warm-up and measured job on that model); the Python side runs float32 as ` +
      'in the main table, the reference. ' +
      (entries.some((e) => e.spec.kind === 'imagic')
        ? 'Imagic was asked for with --workload: its training ran under autocast too, which is not this comparison.'
        : 'Imagic is not run in this mode: training under autocast is not the comparison (ask for it with --workload imagic).');
  return `${mode}${precision}\n\nBundles:\n${bundles}`;
}

export async function main(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  const m = machine(o.threads);
  const entries: Entry[] = [];
  for (const name of o.bundles) {
    const b = bundle(name);
    const specs = workloads(o.quick);
    for (const wname of selectedWorkloads(o)) {
      const raw = specs[wname];
      const spec = raw.kind === 'edit' ? await ensureInversion(b, raw, o.threads) : raw;
      entries.push(await measure(b, wname, spec, o.reps, o.threads, o.autocast ?? undefined));
    }
  }
  const loadAtEnd = currentLoad();
  const checksums = 'mean |final latents|, mean |z| for the inversion, the summed losses for Imagic';
  const columns =
    'Columns: wall time of the job only (median), torchedit/Python time ratio, time per step (per UNet call), ' +
    'minor + major page faults during the job per UNet call, peak RSS of each process (load + warm-up + job; for Imagic stage A, ' +
    "the peak at the end of stage A), the worst event-loop delay during torchedit's job, ";
  const body = [
    o.autocast
      ? `## torchedit in ${o.autocast} autocast vs Python float32${o.quick ? ' (quick)' : ''}`
      : `## Main table${o.quick ? ' (quick)' : ''}`,
    '',
    machineMarkdown(m, loadAtEnd, o.autocast ? `torchedit ran ${o.autocast} autocast, Python float32` : undefined),
    '',
    describe(o, entries),
    '',
    table(entries, o.autocast),
    '',
    o.autocast
      ? columns +
        "the issue's RSS and event-loop targets (no time targets: the issue's are at equal precision, float32 on both sides), " +
        `and the accuracy cost of ${o.autocast}: the relative difference of torchedit's checksum from Python float32's (the checksum: ${checksums}; ` +
        "worst over the runs; no pass threshold: the main table's 1e-3 check is for float32 on both sides)."
      : columns +
        "the issue's targets " +
        '(time only on the sd bundle: ≤ 0.6× Python for text-to-image and LEDITS, ≤ 0.8× for Imagic), and whether both sides computed ' +
        `the same result (relative difference of ${checksums}).`,
  ].join('\n');
  process.stdout.write(`${body}\n`);
  if (o.write) {
    const [section, raw] = o.autocast ? (['bf16', 'last-run-bf16.json'] as const) : (['main', 'last-run.json'] as const);
    writeSection(section, body);
    mkdirSync(cacheDir, { recursive: true });
    writeFileSync(join(cacheDir, raw), JSON.stringify({ machine: m, options: o, entries }, null, 2));
    process.stderr.write(`bench: wrote bench/RESULTS.md, section ${section} (raw runs: bench/.cache/${raw})\n`);
  }
  if (o.scaling) {
    const { runScaling } = await import('./scaling.js');
    await runScaling({ quick: o.quick, threads: o.threads, write: o.write });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
