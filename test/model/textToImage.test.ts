import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadModel, type JobProgress, type StableDiffusionModel } from '../../lib/index.js';
import { readSafetensors } from '../../lib/io/safetensors.js';
import { maxAbsDiff, rejectsWithCode, relativeMaxDiff, runPython, testBundle } from '../helpers.js';

async function latents(model: StableDiffusionModel, prompt: string, options: Parameters<StableDiffusionModel['generate']>[1]) {
  const result = await model.generate(prompt, options);
  return (await result.latents.data()) as Float32Array;
}

/** The same job run by the independent Python reference (two UNet calls per step). */
async function reference(
  bundle: string,
  model: StableDiffusionModel,
  request: Record<string, unknown> & { prompt: string; negative: string },
) {
  const out = join(mkdtempSync(join(tmpdir(), 'torchedit-ref-')), 'ref.safetensors');
  const ids = (p: string) => [Array.from(model.tokenizer.encode(p))];
  runPython(
    'test/reference/sd_reference.py',
    ['txt2img', bundle, out],
    JSON.stringify({ ...request, ids: ids(request.prompt), negative_ids: ids(request.negative) }),
  );
  return (await readSafetensors(out)).tensors.get('latents')!.data as Float32Array;
}

test('text-to-image matches the plain-PyTorch reference with separate CFG passes (epsilon and v-prediction)', async () => {
  for (const [name, args] of [
    ['tiny', []],
    ['tiny-v', ['--prediction-type', 'v_prediction', '--seed', '3']],
  ] as const) {
    const bundle = testBundle(name, [...args]);
    const model = await loadModel(bundle);
    for (const eta of [0, 1]) {
      const ours = await latents(model, 'a red circle', { seed: 7, steps: 10, guidanceScale: 5, eta, negativePrompt: 'blurry' });
      const theirs = await reference(bundle, model, {
        prompt: 'a red circle',
        negative: 'blurry',
        steps: 10,
        guidance_scale: 5,
        eta,
        seed: 7,
        latent_height: 8,
        latent_width: 8,
      });
      // float32 round-off differs between one batched call and two separate ones (BLAS blocking),
      // and CFG and x̂_0's 1/√ᾱ amplify it: compare relative to the latents' scale.
      const scale = Math.max(1, ...Array.from(theirs, Math.abs));
      const diff = maxAbsDiff(ours, theirs) / scale;
      console.log(`# ${name} eta=${eta}: max abs diff / scale ${diff.toExponential(2)} (scale ${scale.toFixed(2)})`);
      assert.ok(diff <= 1e-4, `${name} eta=${eta}: relative max diff ${diff}`);
    }
    model.dispose();
  }
});

test('text-to-image is deterministic for a seed, changes with seed and negative prompt, honours size', async () => {
  const model = await loadModel(testBundle());
  const base = { steps: 8, guidanceScale: 7.5 };
  const a = await latents(model, 'a blue square', { ...base, seed: 1 });
  assert.deepEqual(await latents(model, 'a blue square', { ...base, seed: 1 }), a);
  assert.ok(maxAbsDiff(a, await latents(model, 'a blue square', { ...base, seed: 2 })) > 1e-3);
  assert.ok(maxAbsDiff(a, await latents(model, 'a blue square', { ...base, seed: 1, negativePrompt: 'red' })) > 1e-4);
  const wide = await model.generate('a blue square', { ...base, seed: 1, width: 128, height: 64 });
  assert.deepEqual(wide.latents.shape, [1, 4, 8, 16]);
  assert.equal(wide.image.width, 128);
  assert.equal(wide.image.height, 64);
  assert.equal(wide.seed, 1n);
  const png = await wide.image.toBuffer('png');
  assert.ok(png.length > 100);
  const batch = await model.generate('a blue square', { ...base, seed: 1, batchSize: 2 });
  assert.equal(batch.images.length, 2);
  assert.deepEqual(batch.latents.shape, [1 * 2, 4, 8, 8]);
});

test('text-to-image reports progress per step and stops when aborted', async () => {
  const model = await loadModel(testBundle());
  const seen: JobProgress[] = [];
  await model.generate('a circle', { steps: 5, seed: 0, onProgress: (p) => seen.push(p) });
  assert.equal(seen.at(-1)!.phase, 'denoise');
  assert.equal(seen.at(-1)!.step, 5);
  assert.equal(seen.at(-1)!.value, 1, 'the last step is timestep 1 (leading spacing, offset 1)');
  const controller = new AbortController();
  const job = model.generate('a circle', {
    steps: 1000,
    seed: 0,
    signal: controller.signal,
    onProgress: (p) => {
      if (p.step >= 3) controller.abort();
    },
  });
  await rejectsWithCode(job, 'ERR_ABORTED');
  await rejectsWithCode(model.generate('a circle', { steps: 0 }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(model.generate('a circle', { width: 96 }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(model.generate('a circle', { eta: 2 }), 'ERR_INVALID_OPTION');
});

test('encodePrompt caches repeated prompts and batches several', async () => {
  const model = await loadModel(testBundle());
  const one = await model.encodePrompt('a green triangle');
  assert.deepEqual(one.shape, [1, 77, 32]);
  const both = await model.encodePrompt(['a green triangle', 'on the left']);
  assert.deepEqual(both.shape, [2, 77, 32]);
  const first = (await one.data()) as Float32Array;
  const pair = (await both.data()) as Float32Array;
  assert.deepEqual(pair.subarray(0, first.length), first);
  assert.ok(maxAbsDiff(pair.subarray(first.length), first) > 1e-3);
  // Straight from the text encoder module, no cache: the same numbers.
  const direct = await model.modules().textEncoder.forward(model.tokenize('a green triangle'));
  assert.ok(!Array.isArray(direct) && direct !== null && typeof direct === 'object');
  assert.deepEqual(await (direct as { data(): Promise<unknown> }).data(), first);
});

test('bfloat16 autocast runs the UNet in mixed precision: close to float32, not identical', async () => {
  const full = await loadModel(testBundle());
  const mixed = await loadModel(testBundle(), { autocast: 'bfloat16' });
  const options = { steps: 5, seed: 4, guidanceScale: 3 };
  const a = await latents(full, 'a red circle', options);
  const b = await latents(mixed, 'a red circle', options);
  const relative = relativeMaxDiff(b, a);
  console.log(`# bfloat16 autocast: relative max difference ${relative.toExponential(2)} after 5 steps`);
  assert.ok(relative > 0 && relative < 0.1, `${relative}`);
  await rejectsWithCode(loadModel(testBundle(), { autocast: 'float16' }), 'ERR_INVALID_OPTION');
});
