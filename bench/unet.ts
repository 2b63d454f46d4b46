/**
 * One UNet call, side by side: torchedit with the fused attention kernel and without it (float32
 * and bfloat16 autocast), and plain PyTorch over the same unet.pt (as a user writes it, and with
 * glibc told to keep freed memory). Writes RESULTS.md's `unet` section.
 *
 *   node dist/bench/unet.js [--bundle sd[,full]] [--latent 64,32] [--reps 3] [--calls 2]
 *                           [--sides NAME[,NAME]] [--full-sides NAME[,NAME]] [--full-reps N] [--full-dir DIR]
 *                           [--no-write]
 *
 * sd: the reduced SD 1.5-structure bundle (bench/measure.ts). full: SD 1.5's exact UNet widths
 * (scripts/make_sd_bench_bundle.py --full, 3.4 GB of float32 weights), made on first use in
 * --full-dir (default /tmp/torchedit-sd15-full; never inside the repository). The full bundle runs at
 * 64×64 only and with --full-sides (default: torchedit fused, unfused and bfloat16, and tuned Python:
 * plain Python's page faults make a call take minutes there).
 *
 * How a number is taken: each (side, latent, repetition) is a fresh process, the sides alternating
 * within a repetition (rotated each repetition). A process loads the bundle, makes two warm-up
 * calls (TorchScript's profiling executor profiles the first call and optimises the graph during the
 * second, which costs up to 1.4 s more under bfloat16 autocast), then times `calls` calls of batch 2 (the unconditional and
 * text halves of a CFG step) at t = 500; its number is the median of its calls, the table's the
 * median over repetitions. torchedit's calls go through the model's predictNoise (its dtype casts
 * and autocast) on the worker, timed there; Python's are `unet(sample, t, states)` under no_grad.
 * Inputs are the same on every side (torch.manual_seed(1) randn latents, (2) randn states).
 *
 * GFLOP/s: 2 × multiply-adds of the convolutions, linear layers and attention products of one call
 * (bench/python/unet.py --flops, counted on the eager model the bundle was traced from), divided by
 * the time; the SGEMM peak is torch.mm on 2048² float32 matrices in one thread (the same OpenBLAS),
 * measured in the same run.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Tensor, configure, loadModel } from '../lib/index.js';
import { native } from '../lib/binding.js';
import {
  bundle,
  cacheDir,
  currentLoad,
  fmt,
  machine,
  machineMarkdown,
  median,
  python,
  repoRoot,
  runChild,
  writeSection,
  type Bundle,
} from './measure.js';

const SIDES = [
  'torchedit',
  'torchedit-unfused',
  'torchedit-bf16',
  'torchedit-bf16-unfused',
  'python',
  'python-tuned',
  'ort',
  'ort-mha',
] as const;
type Side = (typeof SIDES)[number];

const SIDE_LABEL: Record<Side, string> = {
  torchedit: 'torchedit, fused attention',
  'torchedit-unfused': 'torchedit, unfused (`fusedAttention: false`)',
  'torchedit-bf16': 'torchedit bfloat16 autocast, fused',
  'torchedit-bf16-unfused': 'torchedit bfloat16 autocast, unfused',
  python: 'Python (plain user code)',
  'python-tuned': 'Python, glibc keeps freed memory',
  ort: 'onnxruntime-node, plain ONNX export',
  'ort-mha': 'onnxruntime-node, fused MultiHeadAttention',
};

const pythonUnet = join(repoRoot, 'bench', 'python', 'unet.py');
const self = new URL(import.meta.url);

/** The onnxruntime-node side (`--ort-child`): the same call on an ONNX export of the bundle's UNet. */
interface OrtChildArgs {
  model: string;
  inputs: { sample: string; states: string; sampleShape: number[]; statesShape: number[] };
  calls: number;
  threads: number;
  out: string;
}

/**
 * onnxruntime-node as a Node user runs it: one intra-op thread, sequential execution, every graph
 * optimisation on (its load-time fusions, e.g. of GELU and LayerNorm, are part of what it is).
 * Imported only here, so torchedit's own processes never load onnxruntime.
 */
async function ortChild(a: OrtChildArgs): Promise<void> {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const sample = new ort.Tensor('float32', readFloats(a.inputs.sample), a.inputs.sampleShape);
  const states = new ort.Tensor('float32', readFloats(a.inputs.states), a.inputs.statesShape);
  const timestep = new ort.Tensor(
    'int64',
    BigInt64Array.from({ length: a.inputs.sampleShape[0] }, () => 500n),
    [a.inputs.sampleShape[0]],
  );
  const feeds = { sample, timestep, encoder_hidden_states: states };
  for (let i = 0; i < 2; i++) await session.run(feeds); // warm-up, as on the other sides
  const seconds: number[] = [];
  let out: Float32Array | undefined;
  for (let i = 0; i < a.calls; i++) {
    const t0 = performance.now();
    const result = await session.run(feeds);
    seconds.push((performance.now() - t0) / 1000);
    out = result.noise.data as Float32Array;
  }
  writeFileSync(a.out, new Uint8Array(out!.buffer, out!.byteOffset, out!.byteLength));
  process.stdout.write(`${JSON.stringify({ seconds })}\n`);
}

/** The ONNX files of a bundle at one latent size (bench/python/onnx_export.py), made once in the cache. */
async function onnxExport(b: Bundle, bname: string, latent: number, dir: string): Promise<{ plain: string; mha: string }> {
  const out = join(dir, `onnx-${bname}-${latent}`);
  const paths = { plain: join(out, 'plain', 'model.onnx'), mha: join(out, 'mha', 'model.onnx') };
  for (const variant of ['plain', 'mha'] as const) {
    if (existsSync(paths[variant])) continue;
    log(`exporting ${bname}'s UNet at ${latent}×${latent} to ONNX (${variant}) in ${out}`);
    // One process per variant, and glibc left to return memory: the full-size export peaks near 16 GB.
    await runChild(python, [
      join(repoRoot, 'bench', 'python', 'onnx_export.py'),
      JSON.stringify({ bundle: b.path, out, latent, batch: 2, variant }),
    ]);
  }
  return paths;
}

/** The inputs every side gets, written once as raw float32 for the onnxruntime side. */
async function writeInputs(b: Bundle, latent: number, dir: string): Promise<OrtChildArgs['inputs']> {
  const cfg = JSON.parse(readFileSync(join(b.path, 'model.json'), 'utf8')) as {
    latentChannels: number;
    textEncoder: { maxLength: number; hiddenSize: number };
  };
  const sampleShape = [2, cfg.latentChannels, latent, latent];
  const statesShape = [2, cfg.textEncoder.maxLength, cfg.textEncoder.hiddenSize];
  const files = { sample: join(dir, `inputs-${latent}-sample.f32`), states: join(dir, `inputs-${latent}-states.f32`) };
  for (const [file, t] of [
    [files.sample, Tensor.randn(sampleShape, { seed: 1 })],
    [files.states, Tensor.randn(statesShape, { seed: 2 })],
  ] as const) {
    const data = (await t.data()) as Float32Array;
    writeFileSync(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    t.dispose();
  }
  return { ...files, sampleShape, statesShape };
}

interface ChildArgs {
  bundle: string;
  latent: number;
  batch: number;
  calls: number;
  threads: number;
  out: string;
  fused?: boolean;
  autocast?: 'bfloat16';
}

/** The torchedit side in this process (`--child`): prints {"seconds": [...]}. */
async function child(a: ChildArgs): Promise<void> {
  configure({ threads: a.threads, fusedAttention: a.fused !== false });
  const model = await loadModel(a.bundle, a.autocast ? { autocast: a.autocast } : {});
  const cfg = JSON.parse(readFileSync(join(a.bundle, 'model.json'), 'utf8')) as {
    latentChannels: number;
    textEncoder: { maxLength: number; hiddenSize: number };
  };
  const sample = Tensor.randn([a.batch, cfg.latentChannels, a.latent, a.latent], { seed: 1 });
  const states = Tensor.randn([a.batch, cfg.textEncoder.maxLength, cfg.textEncoder.hiddenSize], { seed: 2 });
  const testing = native().testing;
  // Two warm-up calls: TorchScript's profiling executor profiles the first and optimises on the second.
  await testing.unetCalls(model.native, sample.native, states.native, 500, 2).promise;
  const [out, seconds] = await testing.unetCalls(model.native, sample.native, states.native, 500, a.calls).promise;
  const eps = Tensor.fromNative(out);
  writeFileSync(a.out, new Uint8Array(((await eps.data()) as Float32Array).buffer));
  const times = Array.from((await Tensor.fromNative(seconds).data()) as Float64Array);
  const sites = model.modules().unet.fusedAttentionSites;
  process.stdout.write(`${JSON.stringify({ seconds: times, sites })}\n`);
}

interface Options {
  bundles: Array<'sd' | 'full'>;
  latents: number[];
  reps: number;
  calls: number;
  sides: Side[];
  fullSides: Side[];
  fullReps: number;
  fullDir: string;
  write: boolean;
  threads: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    bundles: ['sd'],
    latents: [32, 64],
    reps: 3,
    calls: 2,
    sides: [...SIDES],
    fullSides: ['torchedit', 'torchedit-unfused', 'torchedit-bf16', 'python-tuned', 'ort', 'ort-mha'],
    fullReps: 3,
    fullDir: '/tmp/torchedit-sd15-full',
    write: true,
    threads: 1,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--bundle') o.bundles = value().split(',') as Options['bundles'];
    else if (a === '--latent') o.latents = value().split(',').map(Number);
    else if (a === '--reps') o.reps = Number(value());
    else if (a === '--calls') o.calls = Number(value());
    else if (a === '--sides') {
      o.sides = value().split(',') as Side[];
      for (const s of o.sides) if (!SIDES.includes(s)) usage(`unknown side ${s}`);
    } else if (a === '--full-sides') {
      o.fullSides = value().split(',') as Side[];
      for (const s of o.fullSides) if (!SIDES.includes(s)) usage(`unknown side ${s}`);
    } else if (a === '--full-reps') o.fullReps = Number(value());
    else if (a === '--full-dir') o.fullDir = value();
    else if (a === '--threads') o.threads = Number(value());
    else if (a === '--no-write') o.write = false;
    else usage(`unknown argument ${a}`);
  }
  return o;
}

function usage(message: string): never {
  process.stderr.write(`bench/unet: ${message}\nsides: ${SIDES.join(', ')}\n`);
  process.exit(2);
}

function log(message: string): void {
  process.stderr.write(`bench/unet: ${message}\n`);
}

async function fullBundle(dir: string): Promise<Bundle> {
  if (!existsSync(join(dir, 'model.json'))) {
    log(`making the full-size SD 1.5-structure bundle in ${dir} (3.4 GB; minutes)`);
    await runChild(python, [join(repoRoot, 'scripts', 'make_sd_bench_bundle.py'), dir, '--full'], {
      ...process.env,
      MALLOC_MMAP_MAX_: '0',
      MALLOC_TRIM_THRESHOLD_: String(2 ** 34),
    });
  }
  return { name: 'sd', path: dir, label: 'full: SD 1.5 UNet widths 320/640/1280/1280 (make_sd_bench_bundle.py --full)' };
}

interface SideContext {
  onnx?: { plain: string; mha: string };
  inputs?: OrtChildArgs['inputs'];
}

async function runSide(
  side: Side,
  b: Bundle,
  latent: number,
  o: Options,
  out: string,
  ctx: SideContext,
): Promise<{ seconds: number[]; sites?: number }> {
  let output: string;
  if (side.startsWith('ort')) {
    const args: OrtChildArgs = {
      model: side === 'ort-mha' ? ctx.onnx!.mha : ctx.onnx!.plain,
      inputs: ctx.inputs!,
      calls: o.calls,
      threads: o.threads,
      out,
    };
    output = await runChild(process.execPath, [...process.execArgv, self.pathname, '--ort-child', JSON.stringify(args)]);
  } else if (side.startsWith('torchedit')) {
    const args: ChildArgs = {
      bundle: b.path,
      latent,
      batch: 2,
      calls: o.calls,
      threads: o.threads,
      out,
      fused: !side.endsWith('unfused'),
      ...(side.includes('bf16') ? { autocast: 'bfloat16' as const } : {}),
    };
    output = await runChild(process.execPath, [...process.execArgv, self.pathname, '--child', JSON.stringify(args)]);
  } else {
    const env = { ...process.env };
    // "glibc keeps freed memory": no mmap for large blocks and no trimming, so freed activations are
    // reused instead of faulted in again (NOTES.md leads 1-2); the threshold is above any tensor here.
    if (side === 'python-tuned') Object.assign(env, { MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: String(2 ** 34) });
    const args = { bundle: b.path, latent, batch: 2, calls: o.calls, threads: o.threads, out };
    output = await runChild(python, [pythonUnet, JSON.stringify(args)], env);
  }
  const line = output
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (!line) throw new Error(`${side}: no result line:\n${output}`);
  return JSON.parse(line) as { seconds: number[]; sites?: number };
}

function relativeMaxDiff(a: Float32Array, ref: Float32Array): number {
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < ref.length; i++) {
    scale = Math.max(scale, Math.abs(ref[i]));
    diff = Math.max(diff, Math.abs(a[i] - ref[i]));
  }
  return diff / scale;
}

function readFloats(file: string): Float32Array {
  const buf = readFileSync(file);
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

async function main(o: Options): Promise<void> {
  const m = machine(o.threads);
  const work = join(cacheDir, 'unet-outputs');
  mkdirSync(work, { recursive: true });
  const sgemm = JSON.parse(await runChild(python, [pythonUnet, '--sgemm', JSON.stringify({ threads: o.threads })])) as { gflops: number };
  log(`SGEMM peak ${sgemm.gflops.toFixed(1)} GFLOP/s (torch.mm 2048², ${o.threads} thread)`);
  const rows: string[] = [];
  const bundles: Bundle[] = [];
  for (const name of o.bundles) bundles.push(name === 'full' ? await fullBundle(o.fullDir) : bundle('sd'));
  for (const [bi, b] of bundles.entries()) {
    const bname = o.bundles[bi];
    const sides = bname === 'full' ? o.fullSides : o.sides;
    for (const latent of bname === 'full' ? [64] : o.latents) {
      const flops = JSON.parse(await runChild(python, [pythonUnet, '--flops', JSON.stringify({ bundle: b.path, latent, batch: 2 })])) as {
        flops: number;
        byKind: Record<string, number>;
      };
      log(`${bname} ${latent}×${latent}: ${(flops.flops / 1e9).toFixed(1)} GFLOP per call ${JSON.stringify(flops.byKind)}`);
      const ctx: SideContext = {};
      if (sides.some((s) => s.startsWith('ort'))) {
        ctx.onnx = await onnxExport(b, bname, latent, bname === 'full' ? o.fullDir : cacheDir);
        ctx.inputs = await writeInputs(b, latent, work);
      }
      const perSide = new Map<Side, number[]>();
      let sites: number | undefined;
      for (let r = 0; r < (bname === 'full' ? o.fullReps : o.reps); r++) {
        const order = sides.map((_, i) => sides[(i + r) % sides.length]);
        for (const side of order) {
          const out = join(work, `${bname}-${latent}-${side}.f32`);
          const res = await runSide(side, b, latent, o, out, ctx);
          if (res.sites !== undefined && !side.endsWith('unfused')) sites = res.sites;
          const s = median(res.seconds);
          perSide.set(side, [...(perSide.get(side) ?? []), s]);
          log(`${bname} ${latent} rep ${r + 1} ${side}: ${s.toFixed(3)} s/call (${res.seconds.map((x) => x.toFixed(3)).join(', ')})`);
        }
      }
      const refSide: Side = sides.includes('python') ? 'python' : sides.includes('torchedit-unfused') ? 'torchedit-unfused' : sides[0];
      const ref = readFloats(join(work, `${bname}-${latent}-${refSide}.f32`));
      const base = perSide.get('torchedit') ? median(perSide.get('torchedit')!) : NaN;
      for (const side of sides) {
        const t = median(perSide.get(side)!);
        const gflops = flops.flops / t / 1e9;
        const diff = relativeMaxDiff(readFloats(join(work, `${bname}-${latent}-${side}.f32`)), ref);
        rows.push(
          `| ${bname} | ${latent}×${latent} | ${SIDE_LABEL[side]} | ${fmt(t, 3)} | ${perSide
            .get(side)!
            .map((x) => x.toFixed(3))
            .join(
              ' · ',
            )} | ${fmt(t / base, 2)} | ${fmt(gflops, 1)} | ${fmt((100 * gflops) / sgemm.gflops, 0)}% | ${side === refSide ? 'reference' : diff.toExponential(1)} |`,
        );
      }
      rows.push(
        `| ${bname} | ${latent}×${latent} | (${(flops.flops / 1e9).toFixed(1)} GFLOP per call: conv ${(flops.byKind.conv / 1e9).toFixed(1)}, linear ${(flops.byKind.linear / 1e9).toFixed(1)}, attention ${(flops.byKind.attention / 1e9).toFixed(1)}; ${sites ?? '?'} attention sites fused) | | | | | | |`,
      );
    }
  }
  rmSync(work, { recursive: true, force: true });
  const body = [
    '## One UNet call: fused attention, bfloat16, plain PyTorch',
    '',
    machineMarkdown(m, currentLoad(), 'float32 unless the side says bfloat16'),
    `- SGEMM peak (torch.mm, 2048² float32, ${o.threads} thread, OpenBLAS): ${sgemm.gflops.toFixed(1)} GFLOP/s`,
    '',
    "Written by `node dist/bench/unet.js` (bench/unet.ts says how each number is taken). Batch 2 (a CFG step), t = 500, the same inputs on every side; one process per side and repetition, the sides alternating; the time is the median over repetitions of each process's median call.",
    '',
    '| bundle | latent | side | s/call | each repetition | × torchedit fused | GFLOP/s | of SGEMM peak | max difference vs the reference output (relative to its max) |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
  process.stdout.write(`${body}\n`);
  if (o.write) writeSection('unet', body);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === '--child') {
    await child(JSON.parse(process.argv[3]) as ChildArgs);
  } else if (process.argv[2] === '--ort-child') {
    await ortChild(JSON.parse(process.argv[3]) as OrtChildArgs);
  } else {
    await main(parseArgs(process.argv.slice(2)));
  }
}
