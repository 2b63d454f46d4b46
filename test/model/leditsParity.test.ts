import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadModel, type EditOptions, type StableDiffusionModel, type Tensor } from '../../lib/index.js';
import { fromTensor, readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { maxAbsDiff, relativeMaxDiff, runPython, testBundle } from '../helpers.js';

// Parity with test/reference/ledits_reference.py: an independent plain-PyTorch LEDITS (separate
// UNet calls, SEGA as diffusers writes it) over the same TorchScript files and saved inversion.
const floats = async (t: Tensor) => (await t.data()) as Float32Array;
const ids = (model: StableDiffusionModel, prompt: string) => [Array.from(model.tokenizer.encode(prompt))];

test('LEDITS inversion and edits agree with the plain-PyTorch reference', async () => {
  const bundle = testBundle();
  const model = await loadModel(bundle);
  const image = await (await model.generate('a red circle', { seed: 3, steps: 10 })).image.toBuffer('png');
  const dir = mkdtempSync(join(tmpdir(), 'torchedit-parity-'));

  for (const sourcePrompt of ['', 'a red circle']) {
    const inversion = await model.invert(image, { steps: 25, seed: 7, sourcePrompt, sourceGuidanceScale: 3.5 });
    // The reference inverts the same x0 with the same seed.
    await writeSafetensors(join(dir, 'x0.safetensors'), new Map([['x0', await fromTensor(inversion.tensors.x0)]]));
    runPython(
      'test/reference/ledits_reference.py',
      ['invert', bundle, join(dir, 'ref-inversion.safetensors')],
      JSON.stringify({
        image_latents_file: join(dir, 'x0.safetensors'),
        source_ids: sourcePrompt ? ids(model, sourcePrompt) : null,
        uncond_ids: ids(model, ''),
        source_guidance_scale: 3.5,
        steps: 25,
        eta: 1,
        seed: 7,
      }),
    );
    const reference = (await readSafetensors(join(dir, 'ref-inversion.safetensors'))).tensors;
    for (const name of ['xts', 'zs'] as const) {
      const diff = relativeMaxDiff(await floats(inversion.tensors[name]), reference.get(name)!.data as Float32Array, 1);
      console.log(`# inversion '${sourcePrompt}' ${name}: relative max diff ${diff.toExponential(2)}`);
      assert.ok(diff <= 1e-4, `${name}: ${diff}`);
    }

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
      const concepts = (options.concepts ?? []).map((c) => ({
        ids: ids(model, c.prompt),
        scale: c.scale,
        remove: c.remove ?? false,
        warmup: c.warmup,
        cooldown: c.cooldown ?? null,
        threshold: c.threshold,
        weight: c.weight ?? 1,
      }));
      runPython(
        'test/reference/ledits_reference.py',
        ['edit', bundle, file, join(dir, 'ref-edit.safetensors')],
        JSON.stringify({
          target_ids: options.targetPrompt ? ids(model, options.targetPrompt) : null,
          guidance_scale: options.guidanceScale ?? 15,
          skip: options.skip,
          concepts,
          momentum_scale: options.momentumScale ?? 0.3,
          momentum_beta: options.momentumBeta ?? 0.6,
          mask_mode: options.maskMode ?? 'channel',
        }),
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
