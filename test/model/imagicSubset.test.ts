/**
 * Imagic's subset fine-tune (finetune.parameters), its parameters-only save, and chooseEta
 * (issue 21), on the tiny test bundle.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { native } from '../../lib/binding.js';
import {
  configure,
  loadImagic,
  loadModel,
  Tensor,
  type FinetuneParameters,
  type ImagicOptions,
  type Module,
  type StableDiffusionModel,
} from '../../lib/index.js';
import { fromTensor, readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { matchesPattern } from '../../lib/pipelines/imagic/parameters.js';
import { rejectsWithCode, relativeMaxDiff, runPython, testBundle } from '../helpers.js';
import { tinyModelAndImage as setup } from './leditsHelpers.js';

const floats = async (t: Tensor) => (await t.data()) as Float32Array;
const tmp = () => mkdtempSync(join(tmpdir(), 'torchedit-imagic-subset-'));

/** sha256 of every parameter, by name. */
async function parameterHashes(unet: Module): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [name, t] of await unet.parameters()) {
    out.set(
      name,
      createHash('sha256')
        .update(new Uint8Array(((await t.data()) as Float32Array).buffer))
        .digest('hex'),
    );
    t.dispose();
  }
  return out;
}

function unetOf(model: StableDiffusionModel): Module {
  return model.modules().unet;
}

const short = (parameters: FinetuneParameters, seed = 0): ImagicOptions => ({
  seed,
  embedding: { steps: 5, lr: 1e-2 },
  finetune: { steps: 8, lr: 1e-3, parameters },
});

test('a subset fine-tune changes exactly the chosen parameters; the loaded model is bit-identical afterwards and after an abort', async () => {
  const { model, image } = await setup();
  const base = await parameterHashes(unetOf(model));
  const result = await model.imagic(image, 'a blue circle', short('cross-attention'));
  const chosen = [...base.keys()].filter((n) => matchesPattern(n, 'attn2'));
  assert.ok(chosen.length > 0 && chosen.length < base.size);
  assert.deepEqual([...result.trainedParameters], chosen);
  const tuned = await parameterHashes(result.unet);
  for (const [name, hash] of base) {
    if (chosen.includes(name)) assert.notEqual(tuned.get(name), hash, `${name} was trained`);
    else assert.equal(tuned.get(name), hash, `${name} is the loaded model's`);
  }
  assert.deepEqual(await parameterHashes(unetOf(model)), base, 'the loaded model is unchanged');

  const controller = new AbortController();
  const job = model.imagic(image, 'a blue circle', {
    ...short('attention', 1),
    finetune: { steps: 100000, lr: 1e-2, parameters: 'attention' },
    signal: controller.signal,
    onProgress: (p) => {
      if (p.phase === 'finetune' && p.step >= 5) controller.abort();
    },
  });
  await rejectsWithCode(job, 'ERR_ABORTED');
  assert.deepEqual(await parameterHashes(unetOf(model)), base, 'the loaded model is unchanged after an abort');
  result.dispose();
});

test("'all' trains every parameter and equals a selection of every name, bit for bit", async () => {
  const { model, image } = await setup();
  const names = unetOf(model).parameterNames;
  const all = await model.imagic(image, 'a blue circle', short('all', 4));
  const listed = await model.imagic(image, 'a blue circle', short([...names], 4));
  const glob = await model.imagic(image, 'a blue circle', short(['*'], 4));
  assert.equal(all.trainedParameters.length, names.length);
  const hashes = await parameterHashes(all.unet);
  assert.deepEqual(await parameterHashes(listed.unet), hashes);
  assert.deepEqual(await parameterHashes(glob.unet), hashes);
  assert.deepEqual(listed.losses, all.losses);
  const a = await all.generate({ seed: 2, steps: 4 });
  const b = await glob.generate({ seed: 2, steps: 4 });
  assert.deepEqual(await floats(b.latents), await floats(a.latents));
  for (const r of [all, listed, glob]) r.dispose();
});

test('a selection matching no parameter is ERR_INVALID_OPTION naming some of the UNet’s; bad selections are refused', async () => {
  const { model, image } = await setup();
  await assert.rejects(
    model.imagic(image, 'x', short(['to_kv'])),
    (e: { code: string; message: string }) => e.code === 'ERR_INVALID_OPTION' && /matches none/.test(e.message) && /attn/.test(e.message),
  );
  for (const bad of ['some', [], [''], [3]] as unknown[]) {
    await rejectsWithCode(model.imagic(image, 'x', short(bad as string[])), 'ERR_INVALID_OPTION');
  }
  assert.ok(matchesPattern('a.attn2.to_k.weight', 'attn2.to_k'));
  assert.ok(!matchesPattern('a.attn2.to_kv.weight', 'attn2.to_k'));
  assert.ok(matchesPattern('down.0.attn2.to_k.weight', 'down.*.to_k.*'));
});

test('gradient check: the chosen parameters’ gradients equal Python torch autograd over the same UNet', async () => {
  const bundle = testBundle();
  const model = await loadModel(bundle);
  const names = unetOf(model)
    .parameterNames.filter((n) => matchesPattern(n, 'attn2'))
    .slice(0, 4);
  const x0 = Tensor.randn([1, 4, 8, 8], { seed: 1 });
  const embedding = await model.encodePrompt('a blue circle');
  const noise = Tensor.randn([1, 4, 8, 8], { seed: 2 });
  const t = 611;
  const [, grads] = await native().testing.imagicParameterGradients(model.native, x0.native, embedding.native, noise.native, t, names)
    .promise;
  assert.deepEqual(Object.keys(grads).sort(), [...names].sort(), 'only the chosen parameters have gradients');
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
  runPython('test/reference/imagic_reference.py', ['pgrad', bundle, join(dir, 'in.safetensors'), join(dir, 'out.safetensors'), ...names]);
  const reference = (await readSafetensors(join(dir, 'out.safetensors'))).tensors;
  for (const name of names) {
    const ours = await floats(Tensor.fromNative(grads[name]));
    const theirs = reference.get(`grad.${name}`)!.data as Float32Array;
    const relative = relativeMaxDiff(ours, theirs);
    assert.ok(relative <= 1e-5, `${name}: relative gradient difference ${relative}`);
    assert.ok(Math.max(...Array.from(theirs, Math.abs)) > 0, `${name}: the gradient is not zero`);
  }
});

test('a subset result saves only its parameters; load → generate is bit-identical; other models, truncated and modified files are refused; version 1 saves still load', async () => {
  const { model, image } = await setup();
  const subset = await model.imagic(image, 'a green square', short('cross-attention', 2));
  const full = await model.imagic(image, 'a green square', short('all', 2));
  const [subsetDir, fullDir] = [join(tmp(), 'subset'), join(tmp(), 'full')];
  await subset.save(subsetDir);
  await full.save(fullDir);
  const file = (dir: string) => join(dir, 'imagic.safetensors');
  const [subsetBytes, fullBytes] = [statSync(file(subsetDir)).size, statSync(file(fullDir)).size];
  console.log(`# saved: subset (cross-attention) ${subsetBytes} B, full ${fullBytes} B`);
  assert.ok(subsetBytes < fullBytes / 2);

  for (const [result, dir] of [
    [subset, subsetDir],
    [full, fullDir],
  ] as const) {
    const loaded = await loadImagic(dir, model);
    assert.deepEqual(loaded.settings, result.settings);
    assert.deepEqual(loaded.losses, result.losses);
    assert.deepEqual([...loaded.trainedParameters], [...result.trainedParameters]);
    const a = await result.generate({ eta: 0.7, seed: 4, steps: 6 });
    const b = await loaded.generate({ eta: 0.7, seed: 4, steps: 6 });
    assert.deepEqual(await floats(b.latents), await floats(a.latents));
    loaded.dispose();
  }

  const other = await loadModel(testBundle('tiny-v', ['--prediction-type', 'v_prediction', '--seed', '3']));
  await rejectsWithCode(loadImagic(subsetDir, other), 'ERR_MODEL_MISMATCH');

  const bytes = readFileSync(file(subsetDir));
  const truncated = join(tmp(), 'truncated');
  await subset.save(truncated);
  writeFileSync(file(truncated), bytes.subarray(0, bytes.length - 100));
  await rejectsWithCode(loadImagic(truncated, model), 'ERR_FILE_FORMAT');
  const tampered = join(tmp(), 'tampered');
  await subset.save(tampered);
  const changed = Buffer.from(bytes);
  changed[changed.length - 3] ^= 0x40; // a bit of the last trained weight
  writeFileSync(file(tampered), changed);
  await assert.rejects(
    loadImagic(tampered, model),
    (e: { code: string; message: string }) => e.code === 'ERR_FILE_FORMAT' && /modified/.test(e.message),
  );

  // Version 1, as torchedit wrote it before: metadata without a content hash, the whole UNet as unet.pt.
  const legacy = join(tmp(), 'legacy');
  const { tensors, metadata } = await readSafetensors(file(fullDir));
  const kept = new Map([...tensors].filter(([name]) => !name.startsWith('unet.') && name !== 'input_latents'));
  const { contentSha256: _, ...older } = metadata;
  mkdirSync(legacy);
  await full.unet.save(join(legacy, 'unet.pt'));
  await writeSafetensors(file(legacy), kept, { ...older, version: '1' });
  const old = await loadImagic(legacy, model);
  assert.equal(old.inputLatents, null);
  const a = await full.generate({ eta: 0.7, seed: 4, steps: 6 });
  const b = await old.generate({ eta: 0.7, seed: 4, steps: 6 });
  assert.deepEqual(await floats(b.latents), await floats(a.latents));
  await rejectsWithCode(old.chooseEta({ etas: [0.5, 1], steps: 3, seed: 1 }), 'ERR_UNSUPPORTED');
  for (const r of [subset, full, old]) r.dispose();
});

test('chooseEta is deterministic for a seed, picks what a stub criterion says, and returns every candidate’s scores', async () => {
  const { model, image } = await setup();
  const result = await model.imagic(image, 'a blue circle', short('cross-attention', 5));
  const etas = [0.4, 0.7, 1, 1.3];
  const first = await result.chooseEta({ etas, seed: 11, steps: 4 });
  const again = await result.chooseEta({ etas, seed: 11, steps: 4 });
  assert.deepEqual(again.candidates, first.candidates);
  assert.equal(again.eta, first.eta);
  assert.deepEqual(await floats(again.image.latents), await floats(first.image.latents));
  assert.deepEqual(
    first.candidates.map((c) => c.eta),
    etas,
  );
  for (const c of first.candidates) assert.ok(Number.isFinite(c.gain) && Number.isFinite(c.distance) && Number.isFinite(c.score));
  assert.equal(first.eta, first.candidates.reduce((a, b) => (b.score > a.score ? b : a)).eta);
  // The chosen image is the one generate makes at that η with the same seed.
  const direct = await result.generate({ eta: first.eta, seed: 11, steps: 4 });
  assert.deepEqual(await floats(first.image.latents), await floats(direct.latents));

  const seen: number[] = [];
  const stub = await result.chooseEta({
    etas,
    seed: 11,
    steps: 4,
    criterion: (candidate, eta) => {
      assert.ok(candidate.latents.shape.length === 4);
      seen.push(eta);
      return -Math.abs(eta - 1);
    },
  });
  assert.deepEqual(seen, etas);
  assert.equal(stub.eta, 1);
  assert.deepEqual(
    stub.candidates.map((c) => c.score),
    etas.map((e) => -Math.abs(e - 1)),
  );
  await rejectsWithCode(result.chooseEta({ criterion: { fidelity: -1 } }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(result.chooseEta({ criterion: () => Number.NaN, etas: [0.5], steps: 2 }), 'ERR_INVALID_OPTION');
  result.dispose();
});

test('a fine-tuned copy runs the fused attention on its trained parameters (fused generation equals unfused)', async () => {
  const { model, image } = await setup();
  assert.ok(unetOf(model).fusedAttentionSites > 0, 'the tiny UNet has fused attention sites');
  const latents = async (result: Awaited<ReturnType<StableDiffusionModel['imagic']>>, fused: boolean) => {
    configure({ fusedAttention: fused });
    try {
      return await floats((await result.generate({ eta: 1, seed: 5, steps: 6 })).latents);
    } finally {
      configure({ fusedAttention: true });
    }
  };
  for (const parameters of ['all', 'cross-attention'] as const) {
    const a = await model.imagic(image, 'a blue circle', short(parameters));
    const b = await model.imagic(image, 'a blue circle', { ...short(parameters), finetune: { steps: 8, lr: 1e-2, parameters } });
    // The copy shares the loaded model's fused module types, rebound to its own trained tensors; had
    // it kept the base weights, the fused call would disagree with the exported graph by about what
    // another learning rate changes (asserted to be far above the tolerance).
    const fused = await latents(a, true);
    assert.ok(relativeMaxDiff(fused, await latents(a, false)) < 1e-5, `${parameters}: fused vs unfused`);
    assert.ok(relativeMaxDiff(fused, await latents(b, true)) > 1e-3, `${parameters}: the fine-tune shows in the generation`);
    a.dispose();
    b.dispose();
  }
});
