// What the model tests share: the tiny bundle and its test image (LEDITS and Imagic), and the
// requests and checks of the plain-PyTorch references (test/reference/ledits_reference.py,
// dpm_reference.py, leditspp_reference.py), which read prompts as token ids and every option spelled out.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel, type EditOptions, type Inversion, type StableDiffusionModel, type Tensor } from '../../lib/index.js';
import { fromTensor, type RawTensor, readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { relativeMaxDiff, runPython, testBundle } from '../helpers.js';

export const floats = async (t: Tensor) => (await t.data()) as Float32Array;

/** A prompt as the references take it: its token ids, a batch of one. */
export const promptIds = (model: StableDiffusionModel, prompt: string) => [Array.from(model.tokenizer.encode(prompt))];

/** The input image of the LEDITS tests: 'a red circle' as `model` generates it (seed 3, 10 steps), so it is in its own distribution. */
export async function testImage(model: StableDiffusionModel): Promise<Buffer> {
  return (await model.generate('a red circle', { seed: 3, steps: 10 })).image.toBuffer('png');
}

let tinyPromise: Promise<{ model: StableDiffusionModel; image: Buffer }> | undefined;
/** The tiny bundle and its test image, loaded once per test file. */
export function tinyModelAndImage(): Promise<{ model: StableDiffusionModel; image: Buffer }> {
  tinyPromise ??= (async () => {
    const model = await loadModel(testBundle());
    return { model, image: await testImage(model) };
  })();
  return tinyPromise;
}

/**
 * Has `script` invert the same x0 as `inversion` (written to `dir`), with the source prompt and
 * the sampler settings in `request` (snake_case, as the script reads them), and asserts that its
 * xts and zs agree with ours to 1e-4 relative. Returns the reference's tensors.
 */
export async function checkReferenceInversion(
  script: string,
  bundle: string,
  dir: string,
  model: StableDiffusionModel,
  inversion: Inversion,
  sourcePrompt: string,
  request: Record<string, unknown>,
): Promise<Map<string, RawTensor>> {
  await writeSafetensors(join(dir, 'x0.safetensors'), new Map([['x0', await fromTensor(inversion.tensors.x0)]]));
  runPython(
    script,
    ['invert', bundle, join(dir, 'ref-inversion.safetensors')],
    JSON.stringify({
      image_latents_file: join(dir, 'x0.safetensors'),
      source_ids: sourcePrompt ? promptIds(model, sourcePrompt) : null,
      uncond_ids: promptIds(model, ''),
      ...request,
    }),
  );
  const reference = (await readSafetensors(join(dir, 'ref-inversion.safetensors'))).tensors;
  for (const name of ['xts', 'zs'] as const) {
    const diff = relativeMaxDiff(await floats(inversion.tensors[name]), reference.get(name)!.data as Float32Array, 1);
    console.log(`# inversion '${sourcePrompt}' ${name}: relative max diff ${diff.toExponential(2)}`);
    assert.ok(diff <= 1e-4, `${name}: ${diff}`);
  }
  return reference;
}

/** The edit defaults a reference is told where the options leave them out. */
export interface ReferenceDefaults {
  skip?: number;
  momentumScale: number;
  maskMode: 'channel' | 'sum';
  concept: { scale?: number; warmup?: number; threshold?: number };
}

/** LEDITS's (a DDPM inversion): the cases state skip and each concept's scale, warmup and threshold. */
export const leditsDefaults: ReferenceDefaults = { momentumScale: 0.3, maskMode: 'channel', concept: {} };

/** LEDITS++'s for a dpmsolver++ inversion. */
export const dpmDefaults: ReferenceDefaults = {
  skip: 0,
  momentumScale: 0,
  maskMode: 'sum',
  concept: { scale: 5, warmup: 0, threshold: 0.9 },
};

/**
 * The edit's concepts as the references read them; with `masks`, also each one's token count and
 * implicit mask (leditspp_reference.py).
 */
export function referenceConcepts(model: StableDiffusionModel, options: EditOptions, defaults: ReferenceDefaults, masks = false) {
  return (options.concepts ?? []).map((c) => ({
    ids: promptIds(model, c.prompt),
    ...(masks
      ? { token_count: model.tokenizer.tokenize(c.prompt).length, implicit_mask: c.implicitMask ?? options.implicitMask ?? 'off' }
      : {}),
    scale: c.scale ?? defaults.concept.scale,
    remove: c.remove ?? false,
    warmup: c.warmup ?? defaults.concept.warmup,
    cooldown: c.cooldown ?? null,
    threshold: c.threshold ?? defaults.concept.threshold,
    weight: c.weight ?? 1,
  }));
}

/** An edit request for a reference's `edit` command (snake_case, every option given). */
export function referenceEditRequest(model: StableDiffusionModel, options: EditOptions, defaults: ReferenceDefaults, masks = false) {
  return {
    target_ids: options.targetPrompt ? promptIds(model, options.targetPrompt) : null,
    guidance_scale: options.guidanceScale ?? 15,
    skip: options.skip ?? defaults.skip,
    concepts: referenceConcepts(model, options, defaults, masks),
    momentum_scale: options.momentumScale ?? defaults.momentumScale,
    momentum_beta: options.momentumBeta ?? 0.6,
    mask_mode: options.maskMode ?? defaults.maskMode,
  };
}
