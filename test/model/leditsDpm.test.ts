// LEDITS++'s inversion: edit-friendly SDE-DPM-Solver++(2M) (`scheduler: 'dpmsolver++'`,
// docs/algorithms.md §8), its inversion-time `skipNoisiest`, exact replay, parity of inversion and
// replay with the independent plain-PyTorch reference (test/reference/dpm_reference.py), saved
// files, seeds and errors. Small on purpose: the tiny random-weight bundle and few steps.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadInversion, type EditOptions, type Inversion } from '../../lib/index.js';
import { readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { maxAbsDiff, rejectsWithCode, relativeMaxDiff, runPython, testBundle } from '../helpers.js';
import { checkReferenceInversion, dpmDefaults, floats, referenceEditRequest, tinyModelAndImage as setup } from './leditsHelpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'torchedit-dpm-'));

/** max |edit − x_0| / max |x_0| for an edit that replays the inversion's own noise estimate. */
async function reconstructionError(inversion: Inversion, skip: number): Promise<number> {
  const { sourcePrompt, sourceGuidanceScale } = inversion.settings;
  const result = await inversion.edit({ targetPrompt: sourcePrompt, guidanceScale: sourceGuidanceScale, skip });
  return relativeMaxDiff(await floats(result.latents), await floats(inversion.tensors.x0), 1);
}

test('DPM-Solver++: the replay reconstructs the input exactly at any skipNoisiest and edit-time skip, with and without a source prompt', async () => {
  const { model, image } = await setup();
  for (const sourcePrompt of ['', 'a red circle']) {
    for (const skipNoisiest of [0, 0.15, 0.5]) {
      const inversion = await model.invert(image, { scheduler: 'dpmsolver++', steps: 12, skipNoisiest, seed: 1, sourcePrompt });
      assert.deepEqual(inversion.tensors.zs.shape, [12, 1, 4, 8, 8]);
      for (const skip of [0, 5, 11]) {
        const error = await reconstructionError(inversion, skip);
        console.log(`# source '${sourcePrompt}', skipNoisiest ${skipNoisiest}, skip ${skip}: relative error ${error.toExponential(2)}`);
        assert.ok(error <= 1e-4, `source '${sourcePrompt}', skipNoisiest ${skipNoisiest}, skip ${skip}: ${error}`);
      }
      // The last map is not zero (diffusers' final σ = 0 would make it so), and another prompt changes the result.
      assert.ok(Math.max(...Array.from((await floats(inversion.tensors.zs)).slice(-256), Math.abs)) > 0.1);
      const other = await inversion.edit({ targetPrompt: 'a blue square', guidanceScale: 3.5 });
      assert.ok(maxAbsDiff(await floats(other.latents), await floats(inversion.tensors.x0)) > 1e-3);
    }
  }
});

test("skipNoisiest schedules int(steps·(1 + f)) timesteps and inverts the last steps (DPM-Solver's spacing); the DDPM path keeps its own", async () => {
  const { model, image } = await setup();
  const timesteps = async (options: object) =>
    Array.from(await (await model.invert(image, { seed: 0, ...options })).tensors.timesteps.data(), Number);
  // DPMSolverMultistepScheduler, "leading", 1000 train steps, offset 1: (n − k)·(1000 // (n + 1)) + 1
  const leading = (n: number) => Array.from({ length: n }, (_, k) => (n - k) * Math.floor(1000 / (n + 1)) + 1);
  assert.deepEqual(await timesteps({ scheduler: 'dpmsolver++', steps: 10, skipNoisiest: 0 }), leading(10));
  // int(10 · 1.15) = 11, int(50 · 1.15) = int(57.4999…) = 57, as Python computes it
  assert.deepEqual(await timesteps({ scheduler: 'dpmsolver++', steps: 10, skipNoisiest: 0.15 }), leading(11).slice(-10));
  assert.deepEqual(await timesteps({ scheduler: 'dpmsolver++', skipNoisiest: 0.15 }), leading(57).slice(-50));
  // DDPM: DDIM's leading spacing of the longer schedule, its last steps
  const ddim = (n: number) => Array.from({ length: n }, (_, k) => (n - 1 - k) * Math.floor(1000 / n) + 1);
  assert.deepEqual(await timesteps({ steps: 10, skipNoisiest: 0.5 }), ddim(15).slice(-10));
  assert.deepEqual(await timesteps({ steps: 10 }), ddim(10));
});

test("with 'dpmsolver++' the defaults are LEDITS++'s: 50 steps, skipNoisiest 0.15; edits replay all steps", async () => {
  const { model, image } = await setup();
  const inversion = await model.invert(image, { scheduler: 'dpmsolver++', seed: 2 });
  const s = inversion.settings;
  assert.deepEqual([s.scheduler, s.steps, s.skipNoisiest, s.eta], ['dpmsolver++', 50, 0.15, 1]);
  assert.deepEqual(inversion.tensors.xts.shape, [50, 1, 4, 8, 8]);
  // edit defaults for a dpmsolver++ inversion: skip 0, no momentum, 'sum' mask, concepts at 5 / 0 / 0.9
  const concepts = [{ prompt: 'blue' }];
  const defaults = await floats((await inversion.edit({ concepts })).latents);
  const explicit: EditOptions = {
    skip: 0,
    momentumScale: 0,
    maskMode: 'sum',
    concepts: [{ prompt: 'blue', scale: 5, warmup: 0, threshold: 0.9 }],
  };
  assert.deepEqual(defaults, await floats((await inversion.edit(explicit)).latents));
  const ddpm = await model.invert(image, { steps: 10, seed: 2 });
  assert.deepEqual([ddpm.settings.scheduler, ddpm.settings.skipNoisiest], ['ddpm', 0]);
});

test('DPM-Solver++ inversion and replay agree with the plain-PyTorch reference (≤ 1e-4 relative)', async () => {
  const bundle = testBundle();
  const { model, image } = await setup();
  const dir = tmp();
  for (const sourcePrompt of ['', 'a red circle']) {
    const inversion = await model.invert(image, { scheduler: 'dpmsolver++', steps: 15, skipNoisiest: 0.15, seed: 7, sourcePrompt });
    const reference = await checkReferenceInversion('test/reference/dpm_reference.py', bundle, dir, model, inversion, sourcePrompt, {
      source_guidance_scale: 3.5,
      steps: 15,
      skip_noisiest: 0.15,
      seed: 7,
    });
    assert.deepEqual(Array.from(await inversion.tensors.timesteps.data(), Number), Array.from(reference.get('timesteps')!.data, Number));

    const file = join(dir, 'inversion.safetensors');
    await inversion.save(file);
    const cases: EditOptions[] = [
      { targetPrompt: 'a blue circle', guidanceScale: 5 },
      { targetPrompt: 'a blue circle', guidanceScale: 5, skip: 4 },
      { concepts: [{ prompt: 'blue' }, { prompt: 'red', remove: true, scale: 3, warmup: 2, cooldown: 10, threshold: 0.6 }] },
      {
        targetPrompt: 'a green square',
        guidanceScale: 4,
        skip: 2,
        maskMode: 'channel',
        momentumScale: 0.3,
        concepts: [{ prompt: 'yellow', warmup: 1 }],
      },
    ];
    for (const [i, options] of cases.entries()) {
      const ours = await floats((await inversion.edit(options)).latents);
      runPython(
        'test/reference/dpm_reference.py',
        ['edit', bundle, file, join(dir, 'ref-edit.safetensors')],
        // LEDITS++'s defaults for a dpmsolver++ inversion, stated here for the reference
        JSON.stringify(referenceEditRequest(model, options, dpmDefaults)),
      );
      const theirs = (await readSafetensors(join(dir, 'ref-edit.safetensors'))).tensors.get('latents')!.data as Float32Array;
      const diff = relativeMaxDiff(ours, theirs, 1);
      console.log(`# edit ${i} (source '${sourcePrompt}'): relative max diff ${diff.toExponential(2)}`);
      assert.ok(diff <= 1e-4, `edit ${i}: ${diff}`);
    }
  }
});

test('DPM-Solver++: the same seed gives a bit-identical inversion; save → load → edit is bit-identical', async () => {
  const { model, image } = await setup();
  const options = { scheduler: 'dpmsolver++', steps: 10, skipNoisiest: 0.3, seed: 21, sourcePrompt: 'a red circle' } as const;
  const a = await model.invert(image, options);
  const b = await model.invert(image, options);
  const c = await model.invert(image, { ...options, seed: 22 });
  for (const name of ['xts', 'zs'] as const) assert.deepEqual(await floats(a.tensors[name]), await floats(b.tensors[name]));
  assert.ok(maxAbsDiff(await floats(a.tensors.zs), await floats(c.tensors.zs)) > 1e-3);

  const edit: EditOptions = { targetPrompt: 'a green circle', guidanceScale: 6, skip: 2, concepts: [{ prompt: 'blue' }] };
  const direct = await floats((await a.edit(edit)).latents);
  const file = join(tmp(), 'inversion.safetensors');
  await a.save(file);
  const loaded = await loadInversion(file, model);
  assert.deepEqual(loaded.settings, a.settings);
  assert.deepEqual(await floats((await loaded.edit(edit)).latents), direct);
});

test("an inversion saved before the scheduler was recorded loads as 'ddpm' and edits as before", async () => {
  const { model, image } = await setup();
  const inversion = await model.invert(image, { steps: 10, seed: 3 });
  const file = join(tmp(), 'new.safetensors');
  await inversion.save(file);
  const { tensors, metadata } = await readSafetensors(file);
  const { scheduler: _s, skipNoisiest: _f, ...old } = JSON.parse(metadata.settings);
  // Files of that time had no content hash either (one is only checked where present).
  const { contentSha256: _h, ...oldMetadata } = metadata;
  const oldFile = join(tmp(), 'old.safetensors');
  await writeSafetensors(oldFile, tensors, { ...oldMetadata, settings: JSON.stringify(old) });
  const loaded = await loadInversion(oldFile, model);
  assert.deepEqual(loaded.settings, inversion.settings);
  const edit = { targetPrompt: 'a blue circle', skip: 3 };
  assert.deepEqual(await floats((await loaded.edit(edit)).latents), await floats((await inversion.edit(edit)).latents));
});

test('bad scheduler options reject with clear errors', async () => {
  const { model, image } = await setup();
  const bad = async (options: object, word: string) =>
    assert.rejects(model.invert(image, options), (e: { code: string; message: string }) => {
      assert.equal(e.code, 'ERR_INVALID_OPTION', e.message);
      assert.match(e.message, new RegExp(word));
      return true;
    });
  await bad({ scheduler: 'dpm' }, "'ddpm', 'dpmsolver\\+\\+' for scheduler");
  await bad({ scheduler: 'dpmsolver++', skipNoisiest: 1 }, 'skipNoisiest');
  await bad({ skipNoisiest: -0.1 }, 'skipNoisiest');
  await bad({ scheduler: 'dpmsolver++', eta: 0.5 }, "'dpmsolver\\+\\+'.* for eta");
  // A schedule longer than the model's timesteps: the native check names it.
  await rejectsWithCode(model.invert(image, { scheduler: 'dpmsolver++', steps: 900, skipNoisiest: 0.5 }), 'ERR_INVALID_ARGUMENT');
  await rejectsWithCode(model.invert(image, { steps: 900, skipNoisiest: 0.5 }), 'ERR_INVALID_ARGUMENT');
});
