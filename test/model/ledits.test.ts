import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadInversion, loadModel, Tensor, type Inversion } from '../../lib/index.js';
import { native } from '../../lib/binding.js';
import { maxAbsDiff, rejectsWithCode, relativeMaxDiff, runtimeFixture, testBundle } from '../helpers.js';
import { floats, tinyModelAndImage as setup } from './leditsHelpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'torchedit-ledits-'));

async function reconstructionError(inversion: Inversion, targetPrompt: string, guidanceScale: number, skip: number) {
  const result = await inversion.edit({ targetPrompt, guidanceScale, skip });
  return maxAbsDiff(await floats(result.latents), await floats(inversion.tensors.x0));
}

test('I1: editing with the source prompt and scale and no concepts reproduces the input latents', async () => {
  const { model, image } = await setup();
  for (const sourcePrompt of ['', 'a red circle']) {
    const inversion = await model.invert(image, { steps: 30, seed: 1, sourcePrompt, sourceGuidanceScale: 3.5 });
    assert.deepEqual(inversion.tensors.xts.shape, [30, 1, 4, 8, 8]);
    assert.deepEqual(inversion.tensors.zs.shape, [30, 1, 4, 8, 8]);
    for (const skip of [0, 12, 29]) {
      const error = await reconstructionError(inversion, sourcePrompt, 3.5, skip);
      assert.ok(error <= 1e-4, `source '${sourcePrompt}', skip ${skip}: max abs error ${error}`);
    }
    // Another target prompt does change the result: the check above is not vacuous.
    assert.ok((await reconstructionError(inversion, 'a blue square', 3.5, 0)) > 1e-3);
  }
});

test('I2: with an empty source prompt the inversion does not depend on the source scale', async () => {
  const { model, image } = await setup();
  const a = await model.invert(image, { steps: 20, seed: 5, sourceGuidanceScale: 1 });
  const b = await model.invert(image, { steps: 20, seed: 5, sourceGuidanceScale: 9 });
  assert.deepEqual(await floats(a.tensors.zs), await floats(b.tensors.zs));
  assert.deepEqual(await floats(a.tensors.xts), await floats(b.tensors.xts));
  const c = await model.invert(image, { steps: 20, seed: 5, sourcePrompt: 'a red circle', sourceGuidanceScale: 9 });
  assert.ok(maxAbsDiff(await floats(a.tensors.zs), await floats(c.tensors.zs)) > 1e-3, 'a source prompt does change z');
});

test('I3: the same seed gives bit-identical x_t and z_t; another seed other z, still exact', async () => {
  const { model, image } = await setup();
  const a = await model.invert(image, { steps: 20, seed: 11 });
  const b = await model.invert(image, { steps: 20, seed: 11 });
  const c = await model.invert(image, { steps: 20, seed: 12 });
  assert.deepEqual(await floats(a.tensors.xts), await floats(b.tensors.xts));
  assert.deepEqual(await floats(a.tensors.zs), await floats(b.tensors.zs));
  assert.ok(maxAbsDiff(await floats(a.tensors.zs), await floats(c.tensors.zs)) > 0.1);
  assert.ok((await reconstructionError(c, '', 3.5, 0)) <= 1e-4);
  assert.deepEqual(Array.from((await a.tensors.timesteps.data()) as BigInt64Array).slice(0, 3), [951n, 901n, 851n]);
});

test('SEGA: all concept scales 0 give the target-prompt-only edit', async (t) => {
  const { model, image } = await setup();
  const inversion = await model.invert(image, { steps: 20, seed: 2 });
  const plain = await floats((await inversion.edit({ targetPrompt: 'a blue circle', skip: 4 })).latents);
  const zero = await floats(
    (
      await inversion.edit({
        targetPrompt: 'a blue circle',
        skip: 4,
        concepts: [
          { prompt: 'green', scale: 0 },
          { prompt: 'red', scale: 0, remove: true },
        ],
      })
    ).latents,
  );
  // The two edits run the UNet at batch 2 and batch 4, and BLAS may block a GEMM differently by
  // batch size (AMD EPYC, OPENBLAS_CORETYPE=Haswell: 2e-4 at max |x| ≈ 21 after 16 steps), so the
  // bound is 1e-4 relative to the latents' scale, as in the parity tests.
  const zeroDiff = relativeMaxDiff(zero, plain);
  t.diagnostic(`relative max difference ${zeroDiff.toExponential(2)}`);
  assert.ok(zeroDiff <= 1e-4, `${zeroDiff}`);
  const edited = await floats(
    (await inversion.edit({ targetPrompt: 'a blue circle', skip: 4, concepts: [{ prompt: 'green', scale: 7 }] })).latents,
  );
  // A real concept moves the result far beyond that bound: the check above is not vacuous.
  assert.ok(relativeMaxDiff(edited, plain) > 1e-2, `${relativeMaxDiff(edited, plain)}`);
});

/** The core's SEGA term for fixed ε's, step by step. */
function segaSteps(
  uncond: Tensor,
  concepts: Tensor,
  options: Partial<Parameters<ReturnType<typeof native>['testing']['semanticGuidance']>[2]>,
  steps: number,
) {
  const full = { momentumScale: 0, momentumBeta: 0.5, maskMode: 'channel' as const, concepts: [], ...options };
  return native()
    .testing.semanticGuidance(uncond.native, concepts.native, full, steps)
    .map((h) => Tensor.fromNative(h));
}
const concept = (
  c: Partial<{ scale: number; remove: boolean; warmup: number; cooldown: number | null; threshold: number; weight: number }> = {},
) => ({ scale: 2, remove: false, warmup: 0, cooldown: null, threshold: 0, weight: 1, implicitMask: 'off' as const, tokenCount: 1, ...c });

test('SEGA mask: threshold 0 masks nothing, remove flips the sign, kept share per channel is 1 − threshold', async () => {
  const uncond = Tensor.randn([1, 4, 16, 16], { seed: 1 });
  const epsC = Tensor.randn([1, 1, 4, 16, 16], { seed: 2 });
  const u = await floats(uncond);
  const c = await floats(epsC);
  const [unmasked] = segaSteps(uncond, epsC, { concepts: [concept()] }, 1);
  assert.ok(
    maxAbsDiff(
      await floats(unmasked),
      Array.from(c, (v, i) => 2 * (v - u[i])),
    ) <= 1e-6,
  );
  const [removed] = segaSteps(uncond, epsC, { concepts: [concept({ remove: true })] }, 1);
  assert.deepEqual(
    Array.from(await floats(removed)),
    Array.from(await floats(unmasked), (v) => -v),
  );
  for (const threshold of [0.5, 0.9]) {
    const [masked] = segaSteps(uncond, epsC, { concepts: [concept({ threshold })] }, 1);
    const m = await floats(masked);
    for (let ch = 0; ch < 4; ch++) {
      const kept = m.subarray(ch * 256, (ch + 1) * 256).filter((v) => v !== 0).length / 256;
      assert.ok(Math.abs(kept - (1 - threshold)) <= 1 / 256 + 1e-9, `channel ${ch}: kept ${kept} at threshold ${threshold}`);
    }
    // 'sum' masks whole pixels: every channel keeps the same positions.
    const [summed] = segaSteps(uncond, epsC, { maskMode: 'sum', concepts: [concept({ threshold })] }, 1);
    const s = await floats(summed);
    for (let p = 0; p < 256; p++) {
      const keptAt = [0, 1, 2, 3].map((ch) => s[ch * 256 + p] !== 0);
      assert.ok(keptAt.every((k) => k === keptAt[0]));
    }
    assert.ok(Math.abs(s.filter((v) => v !== 0).length / 1024 - (1 - threshold)) <= 4 / 1024);
  }
});

test('SEGA recursion: warm-up, cooldown and momentum', async () => {
  const uncond = Tensor.zeros([1, 4, 4, 4]);
  const epsC = Tensor.from(
    new Float32Array(2 * 64).map((_, i) => (i < 64 ? 1 : -1)),
    [2, 1, 4, 4, 4],
  );
  const value = async (t: Tensor) => (await floats(t))[0];
  // One concept, warm-up 2: nothing before step 2, then s·ψ; momentum accumulates during warm-up.
  const warm = await Promise.all(
    segaSteps(
      uncond,
      epsC.native ? Tensor.from(new Float32Array(64).fill(1), [1, 1, 4, 4, 4]) : epsC,
      { concepts: [concept({ warmup: 2 })], momentumScale: 0.5, momentumBeta: 0.5 },
      4,
    ).map(value),
  );
  // G_i = 2 + 0.5·ν_i; ν_{i+1} = 0.5·ν_i + 0.5·G_i; applied from i = 2.
  let nu = 0;
  const expected = [0, 1, 2, 3].map((i) => {
    const g = 2 + 0.5 * nu;
    nu = 0.5 * nu + 0.5 * g;
    return i >= 2 ? g : 0;
  });
  warm.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `step ${i}: ${v} vs ${expected[i]}`));
  // Cooldown 1: applies at step 0 only.
  const cool = await Promise.all(
    segaSteps(uncond, Tensor.from(new Float32Array(64).fill(1), [1, 1, 4, 4, 4]), { concepts: [concept({ cooldown: 1 })] }, 3).map(value),
  );
  assert.deepEqual(cool, [2, 0, 0]);
  // Two concepts, warm-ups [0, 2]: while only the first is warm it applies alone with normalised weight.
  const two = await Promise.all(
    segaSteps(uncond, epsC, { concepts: [concept({ weight: 3 }), concept({ warmup: 2, weight: 1 })] }, 3).map(value),
  );
  assert.deepEqual(two, [2, 2, 3 * 2 + 1 * -2]);
});

test('warm-up [0, 5] differs from [5, 0]', async () => {
  const { model, image } = await setup();
  const inversion = await model.invert(image, { steps: 20, seed: 2 });
  const run = async (w: [number, number]) =>
    floats(
      (
        await inversion.edit({
          skip: 2,
          concepts: [
            { prompt: 'blue', warmup: w[0] },
            { prompt: 'square', warmup: w[1] },
          ],
        })
      ).latents,
    );
  assert.ok(maxAbsDiff(await run([0, 5]), await run([5, 0])) > 1e-4);
});

test('save → load → edit equals edit on the original; other models and other files are refused', async () => {
  const { model, image } = await setup();
  const inversion = await model.invert(image, { steps: 20, seed: 4, sourcePrompt: 'a red circle' });
  const options = { targetPrompt: 'a green circle', skip: 3, concepts: [{ prompt: 'blue', threshold: 0.8 }] };
  const direct = await floats((await inversion.edit(options)).latents);
  const file = join(tmp(), 'inversion.safetensors');
  await inversion.save(file);
  const loaded = await loadInversion(file, model);
  assert.deepEqual(loaded.settings, inversion.settings);
  assert.deepEqual(await floats((await loaded.edit(options)).latents), direct);
  const other = await loadModel(testBundle('tiny-v', ['--prediction-type', 'v_prediction', '--seed', '3']));
  await rejectsWithCode(loadInversion(file, other), 'ERR_MODEL_MISMATCH');
  await rejectsWithCode(loadInversion(runtimeFixture('affine_io.safetensors'), model), 'ERR_FILE_FORMAT');
  await rejectsWithCode(loadInversion(runtimeFixture('affine.pt'), model), 'ERR_FILE_FORMAT');
  await rejectsWithCode(loadInversion(join(tmp(), 'missing.safetensors'), model), 'ERR_FILE_NOT_FOUND');
});

test('many edits, queued beside other jobs, leave the inversion unchanged', async () => {
  const { model, image } = await setup();
  const inversion = await model.invert(image, { steps: 20, seed: 6 });
  const before = await Promise.all([inversion.tensors.xts, inversion.tensors.zs, inversion.tensors.x0].map(floats));
  const options = { targetPrompt: 'a yellow triangle', skip: 2, concepts: [{ prompt: 'blue' }, { prompt: 'red', remove: true }] };
  const first = await floats((await inversion.edit(options)).latents);
  const results = await Promise.all([
    inversion.edit(options),
    model.generate('noise', { steps: 5, seed: 1 }),
    inversion.edit({ concepts: [{ prompt: 'green', scale: 20 }] }),
    model.invert(image, { steps: 10, seed: 9 }),
    inversion.edit(options),
  ]);
  for (const i of [0, 4]) assert.deepEqual(await floats((results[i] as { latents: Tensor }).latents), first);
  const after = await Promise.all([inversion.tensors.xts, inversion.tensors.zs, inversion.tensors.x0].map(floats));
  after.forEach((a, i) => assert.deepEqual(a, before[i]));
});

test('bad LEDITS options reject with clear errors before any work', async () => {
  const { model, image } = await setup();
  const inversion = await model.invert(image, { steps: 10, seed: 0 });
  const bad = async (options: object, word: string) =>
    assert.rejects(
      inversion.edit(options),
      (e: { code: string; message: string }) => e.code === 'ERR_INVALID_OPTION' && e.message.includes(word),
    );
  await bad({ concepts: [{ prompt: 'x', threshold: 1 }] }, 'concepts[0].threshold');
  await bad({ concepts: [{ prompt: 'x', threshold: -0.1 }] }, 'threshold');
  await bad({ concepts: [{ prompt: '' }] }, 'concepts[0].prompt');
  await bad({ skip: 10 }, 'skip');
  await bad({ skip: -1 }, 'skip');
  await bad({ maskMode: 'max' }, 'maskMode');
  await bad({ momentumBeta: 1 }, 'momentumBeta');
  await rejectsWithCode(model.invert(image, { steps: -1 }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(model.invert(image, { eta: 0 }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(model.invert(image, { width: 100 }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(model.invert('/nonexistent.png'), 'ERR_IMAGE_READ');
  // skip as a fraction of the inversion's steps
  const fraction = await inversion.edit({ skip: 0.3 });
  const count = await inversion.edit({ skip: 3 });
  assert.deepEqual(await floats(fraction.latents), await floats(count.latents));
});

test('invert and edit report progress and can be aborted', async () => {
  const { model, image } = await setup();
  const phases = new Set<string>();
  const inversion = await model.invert(image, { steps: 10, seed: 0, onProgress: (p) => phases.add(`${p.phase}:${p.total}`) });
  await inversion.edit({ skip: 2, onProgress: (p) => phases.add(`${p.phase}:${p.total}`) });
  assert.ok(phases.has('invert:10') && phases.has('edit:8'), [...phases].join());
  const controller = new AbortController();
  await rejectsWithCode(
    model.invert(image, {
      steps: 1000,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.step > 2) controller.abort();
      },
    }),
    'ERR_ABORTED',
  );
});
