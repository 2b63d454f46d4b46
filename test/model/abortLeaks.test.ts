// Jobs that fail or are aborted part way leave no live handles behind. Found by the soak test
// (bench/soak.ts): a text-to-image aborted after its sampling, while its latents were decoded,
// leaked the latents; each pipeline now disposes what it acquired when a later step fails.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadModel, memory, type StableDiffusionModel } from '../../lib/index.js';
import { rejectsWithCode, repoRoot } from '../helpers.js';

let model: StableDiffusionModel;
before(async () => {
  model = await loadModel(undefined, { onWarning: () => {} });
});
after(() => model?.dispose());

const live = () => memory().liveTensors + memory().liveModules;

test('a text-to-image aborted at its last sampling step (then decoding) leaks nothing', async () => {
  const baseline = live();
  const controller = new AbortController();
  const onProgress = (p: { phase: string; step: number; total: number }) => {
    if (p.step === p.total) controller.abort();
  };
  await rejectsWithCode(model.generate('a red circle', { steps: 3, seed: 0, signal: controller.signal, onProgress }), 'ERR_ABORTED');
  assert.equal(live(), baseline);
});

test('an Imagic sweep aborted after its first η, and an edit with an unreadable mask, leak nothing', async () => {
  const image = join(repoRoot, 'examples', 'red-circle.png');
  using result = await model.imagic(image, 'a blue circle', { embedding: { steps: 1 }, finetune: { steps: 1 }, seed: 0 });
  using inversion = await model.invert(image, { steps: 2, seed: 0 });
  const baseline = live();
  const controller = new AbortController();
  let phases = 0;
  const onProgress = (p: { step: number; total: number }) => {
    if (p.step === p.total && ++phases === 1) controller.abort();
  };
  await rejectsWithCode(result.sweep({ etas: [0.5, 1], steps: 2, seed: 0, signal: controller.signal, onProgress }), 'ERR_ABORTED');
  await rejectsWithCode(
    inversion.edit({ targetPrompt: 'a blue circle', concepts: [{ prompt: 'blue' }], userMask: Buffer.from('not an image') }),
    'ERR_IMAGE_READ',
  );
  assert.equal(live(), baseline);
});
