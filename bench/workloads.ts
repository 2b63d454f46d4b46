/**
 * The benchmark's workloads: their settings (shared with the Python side, which gets them as
 * JSON), how many UNet evaluations each job makes, and the torchedit side of a measured run.
 *
 * Run as a child process by bench/run.ts (never by hand, but it can be):
 *   node dist/bench/workloads.js --child '{"bundle", "name", "spec", "warmup", "threads", "autocast"?}'
 *     loads the bundle (with `autocast`: `loadModel(bundle, { autocast })`, so the warm-up and
 *     the measured job both run on that model), runs the warm-up job, then the measured job, and
 *     prints one JSON line (a {@link RunResult}) on stdout.
 *   node dist/bench/workloads.js --prepare-inversion '{"bundle", "spec", "file", "threads"}'
 *     inverts the benchmark image with an `invert` spec and saves it (the edits' input).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Tensor, configure, loadInversion, loadModel, type Inversion, type StableDiffusionModel } from '../lib/index.js';

export interface Txt2ImgSpec {
  kind: 'txt2img';
  prompt: string;
  negativePrompt: string;
  steps: number;
  guidanceScale: number;
  seed: number;
  /** Latent side; defaults to the bundle's sampleSize. */
  latentSize?: number;
}

export interface InvertSpec {
  kind: 'invert';
  sourcePrompt: string;
  sourceGuidanceScale: number;
  steps: number;
  eta: number;
  seed: number;
  latentSize?: number;
}

export interface ConceptSpec {
  prompt: string;
  scale: number;
  remove: boolean;
  warmup: number;
  threshold: number;
  weight: number;
}

export interface EditSpec {
  kind: 'edit';
  /** The inversion the edit replays (made by --prepare-inversion with {@link inversionFor}). */
  inversionFile?: string;
  inversionSteps: number;
  skip: number;
  targetPrompt: string | null;
  guidanceScale: number;
  concepts: ConceptSpec[];
  momentumScale: number;
  momentumBeta: number;
  maskMode: 'channel' | 'sum';
  eta: number;
  latentSize?: number;
}

export interface ImagicSpec {
  kind: 'imagic';
  targetPrompt: string;
  embedding: { steps: number; lr: number };
  finetune: { steps: number; lr: number };
  seed: number;
  latentSize?: number;
}

export type WorkloadSpec = Txt2ImgSpec | InvertSpec | EditSpec | ImagicSpec;

/** torchedit's mixed-precision mode for `run.js --autocast` (loadModel's `autocast` on CPU); the Python side stays float32. */
export type Autocast = 'bfloat16';
export const AUTOCAST_MODES: readonly Autocast[] = ['bfloat16'];

/** What one side measured for one job (one process). */
export interface Measurement {
  wallSeconds: number;
  minorFaults: number;
  majorFaults: number;
  /** Peak RSS of the process so far (it is fresh, so: of load + warm-up + this job). */
  maxRssKB: number;
  /** torchedit only: worst event-loop delay while the job ran (monitorEventLoopDelay, 1 ms resolution). */
  loopDelayMaxMs?: number;
  /**
   * The worst delay of an idle Node process on the same machine while the job ran: the harness
   * parent, which only waits for its child (the machine's own wake-up latency under this load;
   * set by bench/measure.ts from {@link RunResult.jobWindowMs}).
   */
  idleLoopDelayMaxMs?: number;
  unetCalls?: number;
}

/**
 * A summary of what a job computed, taken after the clock stops, so the harness can check that
 * both sides did the same work: mean |final latents| (txt2img, edit), mean |z| over the noise
 * maps (invert), the sum of the losses of both stages (imagic).
 */
export type Checksum = number;

export interface RunResult extends Measurement {
  side: 'torchedit' | 'python';
  workload: string;
  threads: number;
  /** Python counts its UNet calls; torchedit's are computed ({@link unetEvaluations}). */
  unetSamples?: number;
  /** Imagic: stage A ("embedding", from the job's start) and stage B ("finetune"). */
  phases?: Record<string, Measurement>;
  checksum?: Checksum;
  /** When the measured job started and ended (Unix epoch ms), for the harness's idle-process probe. */
  jobWindowMs?: [number, number];
  /** torchedit only: the autocast dtype the model was loaded with (absent: float32). */
  autocast?: Autocast;
}

const SOURCE = 'a red circle on a blue background';

/** The workloads of the main table, full settings (the issue's) or --quick ones (fewer steps, same shapes). */
export function workloads(quick: boolean): Record<string, WorkloadSpec> {
  const inv = invertSpec(quick);
  const edit = (targetPrompt: string | null, concepts: ConceptSpec[]): EditSpec => ({
    kind: 'edit',
    inversionSteps: inv.steps,
    skip: quick ? 2 : 15,
    targetPrompt,
    guidanceScale: 15,
    concepts,
    momentumScale: 0.3,
    momentumBeta: 0.6,
    maskMode: 'channel',
    eta: inv.eta,
  });
  return {
    txt2img: {
      kind: 'txt2img',
      prompt: 'a yellow square on a green background',
      negativePrompt: '',
      steps: quick ? 3 : 20,
      guidanceScale: 7.5,
      seed: 1,
    },
    invert: inv,
    'edit-0': edit('a blue circle on a blue background', []),
    'edit-1': edit('a red square on a blue background', [concept('a green background')]),
    'edit-3': edit(null, [concept('blue'), concept('a square'), concept('red', true)]),
    imagic: {
      kind: 'imagic',
      targetPrompt: 'a red square on a blue background',
      embedding: { steps: quick ? 2 : 10, lr: 2e-3 },
      finetune: { steps: quick ? 2 : 10, lr: 5e-7 },
      seed: 0,
    },
  };
}

export function invertSpec(quick: boolean, steps = quick ? 4 : 50): InvertSpec {
  return { kind: 'invert', sourcePrompt: SOURCE, sourceGuidanceScale: 3.5, steps, eta: 1, seed: 0 };
}

/** SEGA concept with torchedit's (LEDITS demo) defaults spelled out, so Python gets the same. */
export function concept(prompt: string, remove = false): ConceptSpec {
  return { prompt, scale: 7, remove, warmup: 2, threshold: 0.95, weight: 1 };
}

/** The inversion an edit spec replays: the `invert` workload's settings at the edit's step count. */
export function inversionFor(spec: EditSpec): InvertSpec {
  return { ...invertSpec(false, spec.inversionSteps), latentSize: spec.latentSize };
}

/**
 * UNet evaluations of one job, computed from its settings (not counted): `calls` UNet forward
 * calls of `batch` samples each (torchedit batches CFG, source/target prompts and SEGA concepts
 * into one call per step), `backward` when each call is also back-propagated (Imagic).
 *  - txt2img: steps calls × (2 with CFG scale > 1, else 1)
 *  - invert: steps calls × (2 with a source prompt, else 1)
 *  - edit: (inversion steps − skip) calls × (1 + target prompt? + concepts)
 *  - imagic: embedding.steps + finetune.steps calls × 1, forward and backward
 * The Python side counts its calls as it makes them; the table shows both when they differ.
 */
export function unetEvaluations(spec: WorkloadSpec): { calls: number; batch: number; backward: boolean; phases?: Record<string, number> } {
  switch (spec.kind) {
    case 'txt2img':
      return { calls: spec.steps, batch: spec.guidanceScale > 1 ? 2 : 1, backward: false };
    case 'invert':
      return { calls: spec.steps, batch: spec.sourcePrompt ? 2 : 1, backward: false };
    case 'edit':
      return { calls: spec.inversionSteps - spec.skip, batch: 1 + (spec.targetPrompt ? 1 : 0) + spec.concepts.length, backward: false };
    case 'imagic':
      return {
        calls: spec.embedding.steps + spec.finetune.steps,
        batch: 1,
        backward: true,
        phases: { embedding: spec.embedding.steps, finetune: spec.finetune.steps },
      };
  }
}

/** Steps a job runs (the per-step time divides by this). */
export function stepsOf(spec: WorkloadSpec): number {
  return unetEvaluations(spec).calls;
}

/**
 * The warm-up job: the same shapes and code paths with 2 steps (Imagic: 3 + 3) and prompts the
 * measured job does not use. TorchScript's profiling executor profiles a graph's first run and
 * optimises it on the next; with autograd the Python side measured slower until the third run
 * (1 warm-up step: first measured job 2× slower; 2 inference / 3 training steps: steady).
 */
const WARMUP_STEPS = 2;
const WARMUP_TRAINING_STEPS = 3;
export function warmupOf(spec: WorkloadSpec): WorkloadSpec {
  const w = structuredClone(spec);
  const tag = (p: string) => `${p}, warm-up`;
  switch (w.kind) {
    case 'txt2img':
      w.prompt = tag(w.prompt);
      w.steps = Math.min(w.steps, WARMUP_STEPS);
      break;
    case 'invert':
      w.sourcePrompt = w.sourcePrompt && tag(w.sourcePrompt);
      w.steps = Math.min(w.steps, WARMUP_STEPS);
      break;
    case 'edit':
      w.targetPrompt = w.targetPrompt && tag(w.targetPrompt);
      w.concepts = w.concepts.map((c) => ({ ...c, prompt: tag(c.prompt) }));
      w.skip = Math.max(w.skip, w.inversionSteps - WARMUP_STEPS);
      break;
    case 'imagic':
      w.targetPrompt = tag(w.targetPrompt);
      w.embedding.steps = WARMUP_TRAINING_STEPS;
      w.finetune.steps = WARMUP_TRAINING_STEPS;
      break;
  }
  return w;
}

/** The input image of every workload: [1, 3, size, size] in [-1, 1]; the same formula as bench/python/workloads.py. */
export function benchImage(size: number): Tensor {
  const data = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < size; i++) {
      const y = i / size;
      for (let j = 0; j < size; j++) {
        const x = j / size;
        let v = 0.6 * Math.sin(2 * Math.PI * ((c + 1) * x + (2 - c) * y)) + 0.3 * Math.cos(2 * Math.PI * 3 * x * y);
        if ((x - 0.5) ** 2 + (y - 0.45) ** 2 < 0.08) v = 0.9 - 0.6 * c;
        data[(c * size + i) * size + j] = v;
      }
    }
  }
  return Tensor.from(data, [1, 3, size, size]);
}

// ----------------------------------------------------------------------------- the torchedit side

interface Mark {
  time: number;
  minor: number;
  major: number;
}

function mark(): Mark {
  const u = process.resourceUsage();
  return { time: performance.now(), minor: u.minorPageFault, major: u.majorPageFault };
}

function since(start: Mark, loopDelayMaxMs: number): Measurement {
  const now = mark();
  return {
    wallSeconds: (now.time - start.time) / 1000,
    minorFaults: now.minor - start.minor,
    majorFaults: now.major - start.major,
    maxRssKB: process.resourceUsage().maxRSS,
    loopDelayMaxMs,
  };
}

function meanAbs(data: Float32Array): number {
  let sum = 0;
  for (const v of data) sum += Math.abs(v);
  return sum / data.length;
}

/**
 * Runs one job through torchedit's public API; `onPhaseEnd` is called at Imagic's stage
 * boundary. Returns a function that computes the job's checksum (called after the clock stops).
 */
async function runJob(
  model: StableDiffusionModel,
  inversion: Inversion | null,
  spec: WorkloadSpec,
  onPhaseEnd: (phase: string) => void,
): Promise<() => Promise<Checksum>> {
  const size = (spec.latentSize ?? model.config.sampleSize) * model.config.vaeScaleFactor;
  switch (spec.kind) {
    case 'txt2img': {
      const result = await model.generate(spec.prompt, {
        negativePrompt: spec.negativePrompt,
        steps: spec.steps,
        guidanceScale: spec.guidanceScale,
        seed: spec.seed,
        width: size,
        height: size,
      });
      return async () => {
        using r = result;
        return meanAbs((await r.latents.data()) as Float32Array);
      };
    }
    case 'invert': {
      using image = benchImage(size);
      const result = await model.invert(image, {
        sourcePrompt: spec.sourcePrompt,
        sourceGuidanceScale: spec.sourceGuidanceScale,
        steps: spec.steps,
        eta: spec.eta,
        seed: spec.seed,
      });
      return async () => {
        using r = result;
        return meanAbs((await r.tensors.zs.data()) as Float32Array);
      };
    }
    case 'edit': {
      if (!inversion) throw new Error('an edit job needs an inversion (spec.inversionFile)');
      const result = await inversion.edit({
        targetPrompt: spec.targetPrompt ?? undefined,
        guidanceScale: spec.guidanceScale,
        skip: spec.skip,
        concepts: spec.concepts,
        momentumScale: spec.momentumScale,
        momentumBeta: spec.momentumBeta,
        maskMode: spec.maskMode,
      });
      return async () => {
        using r = result;
        return meanAbs((await r.latents.data()) as Float32Array);
      };
    }
    case 'imagic': {
      using image = benchImage(size);
      const result = await model.imagic(image, spec.targetPrompt, {
        embedding: spec.embedding,
        finetune: spec.finetune,
        seed: spec.seed,
        onProgress: (p) => {
          if (p.phase === 'embedding' && p.step === p.total) onPhaseEnd('embedding');
        },
      });
      return async () => {
        using r = result;
        return [...r.losses.embedding, ...r.losses.finetune].reduce((a, b) => a + b, 0);
      };
    }
  }
}

async function child(args: {
  bundle: string;
  name: string;
  spec: WorkloadSpec;
  warmup: WorkloadSpec;
  threads: number;
  autocast?: Autocast;
  fusedAttention?: boolean;
}): Promise<RunResult> {
  configure({ threads: args.threads, fusedAttention: args.fusedAttention !== false });
  // One model for the warm-up and the measured job, so with autocast the warm-up warms the
  // autocast code paths the job then takes.
  const model = await loadModel(args.bundle, args.autocast ? { autocast: args.autocast } : {});
  const { spec } = args;
  const inversion = spec.kind === 'edit' ? await loadInversion(spec.inversionFile!, model) : null;
  const job = (s: WorkloadSpec, onPhaseEnd: (phase: string) => void) => runJob(model, inversion, s, onPhaseEnd);
  const w0 = performance.now();
  await (await job(args.warmup, () => {}))();
  process.stderr.write(`torchedit: warm-up job ${((performance.now() - w0) / 1000).toFixed(2)}s\n`);

  const histogram = monitorEventLoopDelay({ resolution: 1 });
  const phases: Record<string, Measurement> = {};
  const start = mark();
  const startEpochMs = performance.timeOrigin + start.time;
  let last = start;
  histogram.enable();
  const checksum = await job(spec, (phase) => {
    phases[phase] = since(last, histogram.max / 1e6);
    histogram.reset();
    last = mark();
  });
  const total = since(start, 0);
  histogram.disable();
  if (spec.kind === 'imagic') {
    phases.finetune = since(last, histogram.max / 1e6);
    total.loopDelayMaxMs = Math.max(...Object.values(phases).map((p) => p.loopDelayMaxMs ?? 0));
  } else {
    total.loopDelayMaxMs = histogram.max / 1e6;
  }
  const result: RunResult = {
    side: 'torchedit',
    workload: args.name,
    threads: args.threads,
    ...total,
    jobWindowMs: [startEpochMs, performance.timeOrigin + performance.now()],
    ...(spec.kind === 'imagic' ? { phases } : {}),
    ...(args.autocast ? { autocast: args.autocast } : {}),
  };
  result.checksum = await checksum();
  inversion?.dispose();
  model.dispose();
  return result;
}

async function prepareInversion(args: { bundle: string; spec: InvertSpec; file: string; threads: number }): Promise<void> {
  configure({ threads: args.threads });
  using model = await loadModel(args.bundle);
  const size = (args.spec.latentSize ?? model.config.sampleSize) * model.config.vaeScaleFactor;
  using image = benchImage(size);
  const s = args.spec;
  using inversion = await model.invert(image, {
    sourcePrompt: s.sourcePrompt,
    sourceGuidanceScale: s.sourceGuidanceScale,
    steps: s.steps,
    eta: s.eta,
    seed: s.seed,
  });
  await inversion.save(args.file);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [mode, json] = process.argv.slice(2);
  if (mode === '--child' && json) {
    const result = await child(JSON.parse(json));
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else if (mode === '--prepare-inversion' && json) {
    await prepareInversion(JSON.parse(json));
  } else {
    process.stderr.write('usage: node dist/bench/workloads.js --child JSON | --prepare-inversion JSON (bench/run.ts runs these)\n');
    process.exitCode = 2;
  }
}
