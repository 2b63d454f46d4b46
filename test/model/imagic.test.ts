import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { native } from '../../lib/binding.js';
import { loadImagic, loadModel, Tensor, type Module, type StableDiffusionModel } from '../../lib/index.js';
import { fromTensor, readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { maxAbsDiff, rejectsWithCode, relativeMaxDiff, runPython, testBundle } from '../helpers.js';
import { tinyModelAndImage as setup } from './leditsHelpers.js';

const floats = async (t: Tensor) => (await t.data()) as Float32Array;
const tmp = () => mkdtempSync(join(tmpdir(), 'torchedit-imagic-'));
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;

async function weightsHash(unet: Module): Promise<string> {
  const hash = createHash('sha256');
  const params = await unet.parameters();
  for (const name of [...params.keys()].sort()) {
    const t = params.get(name)!;
    hash.update(name).update(new Uint8Array(((await t.data()) as Float32Array).buffer));
    t.dispose();
  }
  return hash.digest('hex');
}

/** The model's own UNet output on a fixed input: must never change. */
async function unetProbe(model: StableDiffusionModel): Promise<Float32Array> {
  const { unet } = model.modules();
  const out = await unet.forward(
    Tensor.randn([1, 4, 8, 8], { seed: 5 }),
    Tensor.from(new BigInt64Array([500n]), [1]),
    Tensor.randn([1, 77, 32], { seed: 6 }),
  );
  return floats(out as Tensor);
}

test('stage A leaves the UNet bit-identical; the losses of both stages trend down; the model is untouched', async () => {
  const { model, image } = await setup();
  const { unet } = model.modules();
  const before = await weightsHash(unet);
  const probe = await unetProbe(model);
  const result = await model.imagic(image, 'a blue circle', {
    seed: 0,
    embedding: { steps: 200, lr: 2e-2 },
    finetune: { steps: 200, lr: 1e-3 },
  });
  assert.equal(await weightsHash(unet), before, "the loaded model's UNet weights are unchanged");
  assert.notEqual(await weightsHash(result.unet), before, 'the fine-tuned copy did change');
  assert.deepEqual(await unetProbe(model), probe);
  for (const stage of ['embedding', 'finetune'] as const) {
    const losses = result.losses[stage];
    assert.equal(losses.length, 200);
    const [first, last] = [mean(losses.slice(0, 20)), mean(losses.slice(-20))];
    assert.ok(last < first, `${stage}: first tenth ${first}, last tenth ${last}`);
  }
  // Stage B never writes e_opt: with the same seed, stage A alone gives the same e_opt bit for bit.
  const short = await model.imagic(image, 'a blue circle', {
    seed: 0,
    embedding: { steps: 200, lr: 2e-2 },
    finetune: { steps: 1, lr: 1e-3 },
  });
  assert.deepEqual(await floats(short.optimizedEmbedding), await floats(result.optimizedEmbedding));
  assert.ok(maxAbsDiff(await floats(result.optimizedEmbedding), await floats(result.targetEmbedding)) > 1e-3);
  // η = 1 uses exactly e_tgt: the same as a text-to-image run of the target prompt through the fine-tuned UNet's ends.
  const [atOne, atZero] = await result.sweep({ etas: [1, 0], seed: 9, steps: 5 });
  const sampling = { steps: 5, guidanceScale: 7.5, eta: 0, seed: 9n, latentHeight: 8, latentWidth: 8 };
  const viaTarget = await native().pipelines.imagicGenerate(
    model.native,
    result.unet.native,
    result.targetEmbedding.native,
    result.targetEmbedding.native,
    (await model.encodePrompt('')).native,
    { eta: 0.5, sampling },
  ).promise;
  assert.deepEqual(await floats(atOne.latents), await floats(Tensor.fromNative(viaTarget)));
  const viaOptimized = await native().pipelines.imagicGenerate(
    model.native,
    result.unet.native,
    result.optimizedEmbedding.native,
    result.optimizedEmbedding.native,
    (await model.encodePrompt('')).native,
    { eta: 0.5, sampling },
  ).promise;
  assert.deepEqual(await floats(atZero.latents), await floats(Tensor.fromNative(viaOptimized)));
  assert.ok(maxAbsDiff(await floats(atOne.latents), await floats(atZero.latents)) > 1e-3);
});

test('an abort mid-training leaves the model unchanged and rejects with ERR_ABORTED', async () => {
  const { model, image } = await setup();
  const before = await weightsHash(model.modules().unet);
  const probe = await unetProbe(model);
  const controller = new AbortController();
  const job = model.imagic(image, 'a blue circle', {
    seed: 1,
    embedding: { steps: 5 },
    finetune: { steps: 100000, lr: 1e-2 },
    signal: controller.signal,
    onProgress: (p) => {
      if (p.phase === 'finetune' && p.step >= 10) controller.abort();
    },
  });
  await rejectsWithCode(job, 'ERR_ABORTED');
  assert.equal(await weightsHash(model.modules().unet), before);
  assert.deepEqual(await unetProbe(model), probe);
});

test('save → load → generate equals generate on the original; other models are refused', async () => {
  const { model, image } = await setup();
  const result = await model.imagic(image, 'a green square', {
    seed: 2,
    embedding: { steps: 20, lr: 1e-2 },
    finetune: { steps: 20, lr: 1e-3 },
  });
  const dir = join(tmp(), 'imagic');
  await result.save(dir);
  const loaded = await loadImagic(dir, model);
  assert.deepEqual(loaded.settings, result.settings);
  assert.deepEqual(loaded.losses, result.losses);
  const a = await result.generate({ eta: 0.7, seed: 4, steps: 6 });
  const b = await loaded.generate({ eta: 0.7, seed: 4, steps: 6 });
  assert.deepEqual(await floats(b.latents), await floats(a.latents));
  const other = await loadModel(testBundle('tiny-v', ['--prediction-type', 'v_prediction', '--seed', '3']));
  await rejectsWithCode(loadImagic(dir, other), 'ERR_MODEL_MISMATCH');
  await rejectsWithCode(loadImagic(tmp(), model), 'ERR_FILE_NOT_FOUND');
  result.dispose();
  await rejectsWithCode(result.generate({ seed: 1 }), 'ERR_DISPOSED');
});

test('bad Imagic options reject with clear errors', async () => {
  const { model, image } = await setup();
  const bad = async (p: Promise<unknown>, word: string) =>
    assert.rejects(p, (e: { code: string; message: string }) => e.code === 'ERR_INVALID_OPTION' && e.message.includes(word));
  await bad(model.imagic(image, 'x', { embedding: { steps: 0 } }), 'embedding.steps');
  await bad(model.imagic(image, 'x', { finetune: { steps: -3 } }), 'finetune.steps');
  await bad(model.imagic(image, 'x', { embedding: { lr: 0 } }), 'embedding.lr');
  await bad(model.imagic(image, 'x', { finetune: { lr: -1e-5 } }), 'finetune.lr');
  await bad(model.imagic(image, ''), 'targetPrompt');
});

test('gradient check: the embedding gradient of one step equals Python torch autograd over the same UNet', async () => {
  for (const [name, args] of [
    ['tiny', []],
    ['tiny-v', ['--prediction-type', 'v_prediction', '--seed', '3']],
  ] as const) {
    const bundle = testBundle(name, [...args]);
    const model = await loadModel(bundle);
    const x0 = Tensor.randn([1, 4, 8, 8], { seed: 1 });
    const embedding = await model.encodePrompt('a blue circle');
    const noise = Tensor.randn([1, 4, 8, 8], { seed: 2 });
    const t = 437;
    const [lossHandle, gradHandle] = await native().testing.imagicLossGradient(model.native, x0.native, embedding.native, noise.native, t)
      .promise;
    const ours = await floats(Tensor.fromNative(gradHandle));
    const dir = tmp();
    await writeSafetensors(
      join(dir, 'in.safetensors'),
      new Map([
        ['x0', await fromTensor(x0)],
        ['embedding', await fromTensor(embedding)],
        ['noise', await fromTensor(noise)],
        ['t', { dtype: 'int64' as const, shape: [], data: new BigInt64Array([BigInt(t)]) }],
      ]),
    );
    runPython('test/reference/imagic_reference.py', ['grad', bundle, join(dir, 'in.safetensors'), join(dir, 'out.safetensors')]);
    const reference = (await readSafetensors(join(dir, 'out.safetensors'))).tensors;
    const theirs = reference.get('grad')!.data as Float32Array;
    const relative = relativeMaxDiff(ours, theirs);
    console.log(
      `# ${name}: loss ${(await floats(Tensor.fromNative(lossHandle)))[0]} vs ${(reference.get('loss')!.data as Float32Array)[0]}, gradient relative max diff ${relative.toExponential(2)}`,
    );
    assert.ok(relative <= 1e-5, `${name}: relative gradient difference ${relative}`);
    assert.ok(Math.max(...Array.from(theirs, Math.abs)) > 0, 'the gradient is not zero');
  }
});
