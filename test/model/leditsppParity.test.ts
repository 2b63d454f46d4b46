import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadModel, Tensor, type EditOptions } from '../../lib/index.js';
import { readSafetensors } from '../../lib/io/safetensors.js';
import { maxAbsDiff, rejectsWithCode, relativeMaxDiff, runPython, testBundle } from '../helpers.js';
import { floats, leditsDefaults, referenceEditRequest, testImage } from './leditsHelpers.js';

// Parity of LEDITS++'s masks (M¹ from cross-attention, M², their intersection, the user mask)
// with test/reference/leditspp_reference.py: plain PyTorch from the paper and diffusers, one
// UNet call per conditioning, over the same TorchScript files and saved inversion.
const mapsBundle = () => testBundle('tiny-maps', ['--attention-maps']);

test('LEDITS++ masks and masked edits agree with the plain-PyTorch reference', async () => {
  const bundle = mapsBundle();
  const model = await loadModel(bundle);
  assert.deepEqual(model.config.crossAttentionMaps?.downsample, 1);
  const image = await testImage(model);
  const dir = mkdtempSync(join(tmpdir(), 'torchedit-leditspp-'));
  const inversion = await model.invert(image, { steps: 20, seed: 5 });
  const file = join(dir, 'inversion.safetensors');
  await inversion.save(file);
  const [, , h, w] = inversion.tensors.x0.shape;
  // A soft user mask: editable on the left half, fading out to the right.
  const soft = new Float32Array(h * w).map((_, i) => Math.max(0, Math.min(1, 1.5 - (i % w) / (w / 2))));

  const cases: Array<{ name: string; options: EditOptions; userMask?: Float32Array }> = [
    {
      name: 'attention',
      options: { skip: 4, implicitMask: 'attention', concepts: [{ prompt: 'blue', scale: 4, warmup: 1, threshold: 0.7 }] },
    },
    {
      name: 'intersect, two concepts, sum mode',
      options: {
        skip: 2,
        maskMode: 'sum',
        implicitMask: 'intersect',
        concepts: [
          { prompt: 'a blue square', scale: 5, warmup: 2, threshold: 0.8 },
          { prompt: 'red', remove: true, scale: 3, warmup: 0, cooldown: 12, threshold: 0.6, implicitMask: 'off' },
        ],
      },
    },
    {
      name: 'target prompt + noise mask + user mask',
      options: {
        skip: 3,
        targetPrompt: 'a green circle',
        guidanceScale: 4,
        concepts: [{ prompt: 'yellow', scale: 3, warmup: 0, threshold: 0.9 }],
      },
      userMask: soft,
    },
    {
      name: 'attention + user mask',
      options: { skip: 3, implicitMask: 'attention', concepts: [{ prompt: 'green', scale: 6, warmup: 0, threshold: 0.5 }] },
      userMask: soft,
    },
  ];
  for (const { name, options, userMask } of cases) {
    using mask = userMask ? Tensor.from(userMask, [h, w]) : undefined;
    using result = await inversion.edit({ ...options, userMask: mask, returnMasks: true });
    const request = referenceEditRequest(model, options, leditsDefaults, true);
    runPython(
      'test/reference/leditspp_reference.py',
      ['edit', bundle, file, join(dir, 'ref.safetensors')],
      JSON.stringify({
        ...request,
        user_mask: userMask ? [[Array.from({ length: h }, (_, y) => Array.from(userMask.subarray(y * w, (y + 1) * w)))]] : null,
      }),
    );
    const reference = (await readSafetensors(join(dir, 'ref.safetensors'))).tensors;
    const latents = relativeMaxDiff(await floats(result.latents), reference.get('latents')!.data as Float32Array, 1);
    const masks = maxAbsDiff(await floats(result.masks!), reference.get('masks')!.data as Float32Array);
    const share = (await floats(result.masks!)).reduce((a, v) => a + (v > 0 ? 1 : 0), 0) / result.masks!.shape.reduce((a, b) => a * b);
    console.log(
      `# ${name}: latents relative max diff ${latents.toExponential(2)}, masks max diff ${masks.toExponential(2)}, share of mask > 0 ${share.toFixed(2)}`,
    );
    assert.deepEqual(result.masks!.shape, [20 - options.skip!, request.concepts.length, h, w]);
    assert.ok(latents <= 1e-4, `${name}: latents ${latents}`);
    assert.ok(masks <= 1e-6, `${name}: masks ${masks}`);
    // The masks are not trivial: something is masked out and something is kept.
    assert.ok(share > 0.05 && share < 0.95, `${name}: share ${share}`);
  }
});

test('a white user mask changes nothing; a black one gives the reconstruction', async () => {
  const model = await loadModel(mapsBundle());
  const image = await testImage(model);
  const inversion = await model.invert(image, { steps: 12, seed: 2 });
  const [, , h, w] = inversion.tensors.x0.shape;
  const options: EditOptions = { skip: 2, implicitMask: 'intersect', concepts: [{ prompt: 'blue', scale: 6, warmup: 0 }] };
  const plain = await floats((await inversion.edit(options)).latents);
  using white = Tensor.from(new Float32Array(h * w).fill(1), [1, 1, h, w]);
  assert.equal(maxAbsDiff(await floats((await inversion.edit({ ...options, userMask: white })).latents), plain), 0);
  // An image mask: a white PNG is read as exactly 1 everywhere.
  const sharp = (await import('sharp')).default;
  const whiteFile = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#fff' } })
    .png()
    .toBuffer();
  assert.equal(maxAbsDiff(await floats((await inversion.edit({ ...options, userMask: whiteFile })).latents), plain), 0);
  using black = Tensor.from(new Float32Array(h * w), [h, w]);
  const blackEdit = await floats((await inversion.edit({ ...options, userMask: black })).latents);
  assert.equal(maxAbsDiff(blackEdit, await floats(inversion.tensors.x0)), 0);
  assert.ok(maxAbsDiff(plain, await floats(inversion.tensors.x0)) > 0.05, 'the unmasked edit does change the latents');
});

test('bundles with and without maps: loading, the maps field, and clear errors', async () => {
  // A bundle without maps still loads and edits; asking it for an attention mask is its own error.
  const plain = await loadModel(testBundle());
  assert.equal(plain.config.crossAttentionMaps, undefined);
  const image = await (await plain.generate('a red circle', { seed: 3, steps: 4 })).image.toBuffer('png');
  const inversion = await plain.invert(image, { steps: 6, seed: 1 });
  await rejectsWithCode(inversion.edit({ skip: 1, implicitMask: 'attention', concepts: [{ prompt: 'blue' }] }), 'ERR_NO_ATTENTION_MAPS');
  await rejectsWithCode(inversion.edit({ skip: 1, concepts: [{ prompt: 'blue', implicitMask: 'intersect' }] }), 'ERR_NO_ATTENTION_MAPS');
  await rejectsWithCode(inversion.edit({ skip: 1, implicitMask: 'cross' as never, concepts: [{ prompt: 'blue' }] }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(inversion.edit({ skip: 1, userMask: 42 as never }), 'ERR_INVALID_OPTION');
  using wrong = Tensor.from(new Float32Array(4), [2, 2]);
  await rejectsWithCode(inversion.edit({ skip: 1, userMask: wrong }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(inversion.edit({ skip: 1, userMask: '/nonexistent/mask.png' }), 'ERR_IMAGE_READ');
  const edited = await inversion.edit({ skip: 1, concepts: [{ prompt: 'blue' }] });
  assert.equal(edited.masks, null);

  // Maps of the wrong size fail at load, naming the model.json field.
  await assert.rejects(loadModel(testBundle('tiny-bad-maps', ['--variant', 'bad-maps'])), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ERR_MODEL_MISMATCH');
    assert.match(e.message, /crossAttentionMaps\.downsample/);
    return true;
  });
  // formatVersion 1 cannot declare maps; version 2 must.
  const dir = mkdtempSync(join(tmpdir(), 'torchedit-maps-config-'));
  cpSync(mapsBundle(), dir, { recursive: true });
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ ...json, formatVersion: 1 }));
  await rejectsWithCode(loadModel(dir), 'ERR_MODEL_CONFIG');
  const { crossAttentionMaps: _, ...withoutMaps } = json;
  writeFileSync(join(dir, 'model.json'), JSON.stringify(withoutMaps));
  await rejectsWithCode(loadModel(dir), 'ERR_MODEL_CONFIG');
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ ...json, crossAttentionMaps: { ...json.crossAttentionMaps, downsample: 3 } }));
  await rejectsWithCode(loadModel(dir), 'ERR_MODEL_CONFIG');
});
