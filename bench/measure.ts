/**
 * What bench/run.ts and bench/scaling.ts share: where things are, the two bundles, one measured
 * run in a fresh child process per side, medians, the machine description, and RESULTS.md's
 * sections (each tool rewrites only its own).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inversionFor, warmupOf, type Autocast, type EditSpec, type RunResult, type WorkloadSpec } from './workloads.js';

/** Compiled files run from dist/bench/, two folders below the repository root. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const python = '/usr/bin/python3';
export const cacheDir = join(repoRoot, 'bench', '.cache');
export const resultsFile = join(repoRoot, 'bench', 'RESULTS.md');
const workloadsJs = fileURLToPath(new URL('./workloads.js', import.meta.url));
const pythonWorkloads = join(repoRoot, 'bench', 'python', 'workloads.py');

export type BundleName = 'small' | 'sd';

export interface Bundle {
  name: BundleName;
  path: string;
  /** What the table says about it. */
  label: string;
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

function runScript(script: string, args: string[]): void {
  log(`making ${args[0]} with ${script}`);
  const result = spawnSync(python, [join(repoRoot, script), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`${script} failed (${result.status}): ${result.stderr || result.error}`);
}

/**
 * small: the shipped model (models/shapes-64), or — while it does not exist — the tests' tiny
 * random bundle (scripts/make_test_bundle.py). sd: a random-weight bundle with SD 1.5's UNet
 * structure at reduced width (scripts/make_sd_bench_bundle.py), made on first use.
 */
export function bundle(name: BundleName): Bundle {
  if (name === 'small') {
    const shipped = join(repoRoot, 'models', 'shapes-64');
    if (existsSync(join(shipped, 'model.json'))) return { name, path: shipped, label: 'small: models/shapes-64' };
    const tiny = join(repoRoot, 'test', 'fixtures', 'generated', 'bundles', 'tiny');
    if (!existsSync(join(tiny, 'model.json'))) runScript('scripts/make_test_bundle.py', [tiny]);
    return { name, path: tiny, label: 'small: tiny test bundle (models/shapes-64 not found)' };
  }
  // Named for the scripts that make it, so a change to either remakes it instead of benchmarking a stale file.
  const makers = ['scripts/make_sd_bench_bundle.py', 'scripts/make_test_bundle.py'];
  const version = createHash('sha256');
  for (const script of makers) version.update(readFileSync(join(repoRoot, script)));
  const dir = join(cacheDir, `sd15-structure-${version.digest('hex').slice(0, 10)}`);
  if (!existsSync(join(dir, 'model.json'))) runScript('scripts/make_sd_bench_bundle.py', [dir]);
  return { name, path: dir, label: 'sd: SD 1.5 UNet structure, channels 64/128/256/256 (scripts/make_sd_bench_bundle.py)' };
}

export function bundleConfig(b: Bundle): { sampleSize: number; name: string } {
  return JSON.parse(readFileSync(join(b.path, 'model.json'), 'utf8')) as { sampleSize: number; name: string };
}

/** A key that changes whenever the bundle's files do (for cached inversions). */
function bundleKey(b: Bundle): string {
  const hash = createHash('sha256').update(readFileSync(join(b.path, 'model.json')));
  for (const file of ['text_encoder.pt', 'unet.pt', 'vae_encoder.pt', 'vae_decoder.pt']) {
    const s = statSync(join(b.path, file));
    hash.update(`${file}:${s.size}:${s.mtimeMs}`);
  }
  return hash.digest('hex').slice(0, 12);
}

/** The inversion an edit replays, made once by torchedit and read by both sides (cached in bench/.cache/). */
export async function ensureInversion(b: Bundle, spec: EditSpec, threads: number): Promise<EditSpec> {
  const inv = inversionFor(spec);
  const dir = join(cacheDir, 'inversions');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${b.name}-${bundleKey(b)}-T${inv.steps}-s${inv.seed}${inv.latentSize ? `-l${inv.latentSize}` : ''}.safetensors`);
  if (!existsSync(file)) {
    log(`inverting the benchmark image on ${b.name} (${inv.steps} steps) for the edits`);
    await runChild(process.execPath, [workloadsJs, '--prepare-inversion', JSON.stringify({ bundle: b.path, spec: inv, file, threads })]);
  }
  return { ...spec, inversionFile: file };
}

export function runChild(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${command} ${args[0]} failed (${code ?? signal}):\n${err.slice(-4000)}`));
    });
  });
}

/**
 * The event-loop delay of this (idle) process, timed by a 1 ms timer, kept as the gaps between
 * ticks so the worst one within a child's job window can be read afterwards. The harness parent
 * only waits for its child, so what it sees is the machine's wake-up latency while that job runs:
 * the floor under torchedit's own loop-delay figure (NOTES.md section 10).
 */
class IdleLoopProbe {
  private readonly gaps: Array<{ end: number; delay: number }> = [];
  private timer: NodeJS.Timeout | null = null;
  private last = 0;

  start(): void {
    this.last = performance.timeOrigin + performance.now();
    const tick = () => {
      const now = performance.timeOrigin + performance.now();
      const delay = now - this.last - 1; // the timer asked for 1 ms
      if (delay > 1) this.gaps.push({ end: now, delay });
      this.last = now;
      this.timer = setTimeout(tick, 1);
    };
    this.timer = setTimeout(tick, 1);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Worst delay of a tick that ended within [from, to] (epoch ms); 0 when none was late. */
  worstWithin([from, to]: [number, number]): number {
    return this.gaps.filter((g) => g.end >= from && g.end - g.delay <= to).reduce((m, g) => Math.max(m, g.delay), 0);
  }
}

/**
 * One measured job of one side in a fresh process (load, warm-up job, measured job). `autocast`
 * applies to the torchedit side only (its model, warm-up and job); Python always runs float32.
 */
export async function runOne(
  side: 'torchedit' | 'python',
  b: Bundle,
  name: string,
  spec: WorkloadSpec,
  threads: number,
  autocast?: Autocast,
  /** torchedit's `configure({ fusedAttention })` (default on); bench/pipelines.ts turns it off. */
  fusedAttention?: boolean,
): Promise<RunResult> {
  const warmup = warmupOf(spec);
  const probe = new IdleLoopProbe();
  probe.start();
  // The torchedit child gets the harness's own node flags, so that a run can try V8 settings
  // (`node --no-memory-reducer dist/bench/run.js`, NOTES section 14).
  const output = await (side === 'torchedit'
    ? runChild(process.execPath, [
        ...process.execArgv,
        workloadsJs,
        '--child',
        JSON.stringify({
          bundle: b.path,
          name,
          spec,
          warmup,
          threads,
          ...(autocast ? { autocast } : {}),
          ...(fusedAttention === false ? { fusedAttention } : {}),
        }),
      ])
    : runChild(python, [
        pythonWorkloads,
        '--bundle',
        b.path,
        '--workload',
        name,
        '--spec',
        JSON.stringify(spec),
        '--warmup-spec',
        JSON.stringify(warmup),
        '--runs',
        '1',
        '--threads',
        String(threads),
      ])
  ).finally(() => probe.stop());
  const line = output
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (!line) throw new Error(`${side} ${name}: no result line in its output:\n${output}`);
  const result = JSON.parse(line) as RunResult;
  if (result.jobWindowMs) result.idleLoopDelayMaxMs = probe.worstWithin(result.jobWindowMs);
  return result;
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGB: number;
  os: string;
  node: string;
  torch: string;
  openblasCoretype: string;
  threads: number;
  date: string;
  loadAverage: string;
}

export function machine(threads: number): Machine {
  const lscpu = spawnSync('lscpu', { encoding: 'utf8' }).stdout ?? '';
  const cpu = /^Model name:\s*(.+)$/m.exec(lscpu)?.[1].trim() ?? cpus()[0]?.model ?? 'unknown';
  let os = `Linux ${release()}`;
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
    if (pretty) os = `${pretty}, kernel ${release()}`;
  } catch {
    /* not Linux-like */
  }
  const torch = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).stdout?.trim() || 'unknown';
  return {
    cpu,
    cores: cpus().length,
    memoryGB: Math.round(totalmem() / 2 ** 30),
    os,
    node: process.version,
    torch: `${torch} (Python: Debian python3-torch; torchedit links the same system libtorch)`,
    openblasCoretype: process.env.OPENBLAS_CORETYPE ?? '(unset)',
    threads,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    loadAverage: loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  };
}

/** `precision` replaces "float32 on both sides" (bench/run.ts --autocast says what each side ran). */
export function machineMarkdown(m: Machine, loadAtEnd?: string, precision = 'float32 on both sides'): string {
  return [
    `- machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB memory; ${m.os}`,
    `- node ${m.node}; torch ${m.torch}`,
    `- OPENBLAS_CORETYPE=${m.openblasCoretype} (left as the environment sets it); ${m.threads} intra-op thread(s) on both sides; ${precision}`,
    `- date ${m.date}; load average at start ${m.loadAverage}${loadAtEnd ? `, at end ${loadAtEnd}` : ''}`,
  ].join('\n');
}

export function currentLoad(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

export type SectionName = 'main' | 'bf16' | 'scaling' | 'serve' | 'unet' | 'pipelines' | 'scale';

/** Replaces RESULTS.md's section `name` (between its markers), creating the file when needed. */
export function writeSection(name: SectionName, body: string): void {
  const text = existsSync(resultsFile)
    ? readFileSync(resultsFile, 'utf8')
    : [
        '# Benchmark results',
        '',
        'Written by `npm run bench` (bench/run.ts: the main table; with --autocast bfloat16, the bf16 table) and bench/scaling.ts (how cost grows);',
        'each rewrites only its own section. How the numbers are taken: bench/NOTES.md and the comments in',
        'bench/run.ts.',
        '',
        '<!-- main:begin -->',
        '<!-- main:end -->',
        '',
        '<!-- scaling:begin -->',
        '<!-- scaling:end -->',
        '',
      ].join('\n');
  writeFileSync(resultsFile, placeSection(text, name, body));
}

/**
 * `text` with section `name` replaced by `body`. A section the text does not have yet is added:
 * `bf16` right after the main section (at the end when there is none), the others at the end.
 */
export function placeSection(text: string, name: SectionName, body: string): string {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  const section = `${begin}\n${body.trim()}\n${end}`;
  if (i >= 0 && j > i) return text.slice(0, i) + section + text.slice(j + end.length);
  const after = name === 'bf16' ? '<!-- main:end -->' : null;
  const k = after ? text.indexOf(after) : -1;
  if (after && k >= 0) return `${text.slice(0, k + after.length)}\n\n${section}${text.slice(k + after.length)}`;
  return `${text.trimEnd()}\n\n${section}\n`;
}

export function fmt(value: number | undefined, digits = 2): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value.toFixed(digits);
}
