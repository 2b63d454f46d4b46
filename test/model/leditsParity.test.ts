import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadModel, type EditOptions } from '../../lib/index.js';
import { readSafetensors } from '../../lib/io/safetensors.js';
import { maxAbsDiff, relativeMaxDiff, runPython, testBundle } from '../helpers.js';
import { checkReferenceInversion, floats, leditsDefaults, referenceEditRequest, testImage } from './leditsHelpers.js';

// Parity with test/reference/ledits_reference.py: an independent plain-PyTorch LEDITS (separate
// UNet calls, SEGA as diffusers writes it) over the same TorchScript files and saved inversion.

test('LEDITS inversion and edits agree with the plain-PyTorch reference', async () => {
  const bundle = testBundle();
  const model = await loadModel(bundle);
  const image = await testImage(model);
  const dir = mkdtempSync(join(tmpdir(), 'torchedit-parity-'));

  for (const sourcePrompt of ['', 'a red circle']) {
    const inversion = await model.invert(image, { steps: 25, seed: 7, sourcePrompt, sourceGuidanceScale: 3.5 });
    // The reference inverts the same x0 with the same seed.
    await checkReferenceInversion('test/reference/ledits_reference.py', bundle, dir, model, inversion, sourcePrompt, {
      source_guidance_scale: 3.5,
      steps: 25,
      eta: 1,
      seed: 7,
    });

    // Edits over torchedit's saved inversion, replayed by the reference.
    const file = join(dir, 'inversion.safetensors');
    await inversion.save(file);
    const cases: EditOptions[] = [
      { targetPrompt: 'a blue circle', guidanceScale: 5, skip: 5 },
      {
        skip: 3,
        concepts: [
          { prompt: 'blue', scale: 4, warmup: 2, threshold: 0.8 },
          { prompt: 'red', remove: true, scale: 3, warmup: 5, cooldown: 15, threshold: 0.6, weight: 0.5 },
        ],
        momentumScale: 0.3,
        momentumBeta: 0.6,
      },
      {
        targetPrompt: 'a green square',
        guidanceScale: 4,
        skip: 8,
        maskMode: 'sum',
        concepts: [{ prompt: 'yellow', scale: 3, warmup: 0, threshold: 0.9 }],
      },
    ];
    for (const [i, options] of cases.entries()) {
      const ours = await floats((await inversion.edit(options)).latents);
      runPython(
        'test/reference/ledits_reference.py',
        ['edit', bundle, file, join(dir, 'ref-edit.safetensors')],
        JSON.stringify(referenceEditRequest(model, options, leditsDefaults)),
      );
      const theirs = (await readSafetensors(join(dir, 'ref-edit.safetensors'))).tensors.get('latents')!.data as Float32Array;
      const diff = relativeMaxDiff(ours, theirs, 1);
      console.log(
        `# edit ${i} (source '${sourcePrompt}'): relative max diff ${diff.toExponential(2)}, absolute ${maxAbsDiff(ours, theirs).toExponential(2)}, latents max |x| ${Math.max(...Array.from(theirs, Math.abs)).toFixed(1)}`,
      );
      assert.ok(diff <= 1e-4, `edit ${i}: ${diff}`);
    }
  }
});
