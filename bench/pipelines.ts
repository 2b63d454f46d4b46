/**
 * The pipelines end to end with the fused attention kernel on and off, side by side: does a
 * whole text-to-image, inversion or edit gain what one UNet call gains (bench/unet.ts)?
 * Writes RESULTS.md's `pipelines` section.
 *
 *   node dist/bench/pipelines.js [--bundle sd|small] [--workload NAME[,NAME]] [--reps 3] [--no-write]
 *
 * The jobs are bench/run.ts's (bench/workloads.ts: same settings, warm-up and timing), run by
 * torchedit only, each (workload, repetition) once with `fusedAttention: true` and once with
 * `false`, alternating which goes first. The prediction column is what the job would take if
 * every UNet call gained the per-call ratio measured in the same run (`--latent`-sized calls
 * through bench/unet.ts's child, fused vs unfused) and nothing else changed:
 * unfused − calls × batch/2 × (call_unfused − call_fused).
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  bundle,
  bundleConfig,
  currentLoad,
  ensureInversion,
  fmt,
  machine,
  machineMarkdown,
  median,
  runChild,
  runOne,
  writeSection,
  type BundleName,
} from './measure.js';
import { unetEvaluations, workloads, type WorkloadSpec } from './workloads.js';

interface Options {
  bundle: BundleName;
  names: string[];
  reps: number;
  write: boolean;
}

function usage(message: string): never {
  process.stderr.write(`bench/pipelines: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const o: Options = { bundle: 'sd', names: ['txt2img', 'invert', 'edit-1'], reps: 3, write: true };
  const known = Object.keys(workloads(false));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--bundle') o.bundle = value() as BundleName;
    else if (a === '--workload') o.names = value().split(',');
    else if (a === '--reps') o.reps = Number(value());
    else if (a === '--no-write') o.write = false;
    else usage(`unknown argument ${a}`);
  }
  for (const n of o.names)
    if (!known.includes(n) || n === 'imagic') usage(`workload ${n}: one of ${known.filter((k) => k !== 'imagic').join(', ')}`);
  return o;
}

/** Seconds per UNet call (batch 2), fused and unfused, through bench/unet.ts's torchedit child. */
async function callTimes(bundlePath: string, latent: number, out: string): Promise<{ fused: number; unfused: number }> {
  const unetJs = new URL('./unet.js', import.meta.url).pathname;
  const one = async (fused: boolean) => {
    const args = { bundle: bundlePath, latent, batch: 2, calls: 3, threads: 1, out, fused };
    const line = (await runChild(process.execPath, [unetJs, '--child', JSON.stringify(args)]))
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .pop();
    return median((JSON.parse(line!) as { seconds: number[] }).seconds);
  };
  return { fused: await one(true), unfused: await one(false) };
}

async function main(o: Options): Promise<void> {
  const m = machine(1);
  const b = bundle(o.bundle);
  const latent = bundleConfig(b).sampleSize;
  const all = workloads(false);
  const rows: string[] = [];
  const call = await callTimes(b.path, latent, join(process.env.TMPDIR ?? '/tmp', 'torchedit-pipelines-call.f32'));
  process.stderr.write(`bench/pipelines: one UNet call ${call.fused.toFixed(3)} s fused, ${call.unfused.toFixed(3)} s unfused\n`);
  for (const name of o.names) {
    let spec: WorkloadSpec = all[name];
    if (spec.kind === 'edit') spec = await ensureInversion(b, spec, 1);
    const calls = unetEvaluations(spec);
    const times: Record<'on' | 'off', number[]> = { on: [], off: [] };
    for (let r = 0; r < o.reps; r++) {
      for (const fused of r % 2 === 0 ? [true, false] : [false, true]) {
        const res = await runOne('torchedit', b, name, spec, 1, undefined, fused);
        const seconds = res.wallSeconds;
        times[fused ? 'on' : 'off'].push(seconds);
        process.stderr.write(`bench/pipelines: ${name} rep ${r + 1} ${fused ? 'fused' : 'unfused'} ${seconds.toFixed(3)} s\n`);
      }
    }
    const on = median(times.on);
    const off = median(times.off);
    // A call's gain scales with its batch (the attention's work does).
    const predicted = off - calls.calls * (calls.batch / 2) * (call.unfused - call.fused);
    rows.push(
      `| ${o.bundle} | ${name} | ${calls.calls} × ${calls.batch} | ${fmt(on, 3)} | ${fmt(off, 3)} | ${fmt(off / on, 2)} | ${fmt(predicted, 3)} (${fmt(off / predicted, 2)}×) | ${times.on.map((x) => x.toFixed(2)).join(' · ')} / ${times.off.map((x) => x.toFixed(2)).join(' · ')} |`,
    );
  }
  const body = [
    '## The pipelines with and without the fused attention kernel (bench/pipelines.ts)',
    '',
    machineMarkdown(m, currentLoad(), 'float32'),
    '',
    `Written by \`node dist/bench/pipelines.js\`: bench/run.ts's jobs (${b.label}), torchedit only, fused attention on and off alternating, median of ${o.reps}. One UNet call of batch 2 at ${latent}×${latent} in the same run: ${call.fused.toFixed(3)} s fused, ${call.unfused.toFixed(3)} s unfused (${(call.unfused / call.fused).toFixed(2)}×). Predicted: the unfused job minus every call's gain.`,
    '',
    '| bundle | workload | UNet calls × batch | fused s | unfused s | gain | predicted fused s (gain) | each repetition (fused / unfused) |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | --- |',
    ...rows,
  ].join('\n');
  process.stdout.write(`${body}\n`);
  if (o.write) writeSection('pipelines', body);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await main(parseArgs(process.argv.slice(2)));
