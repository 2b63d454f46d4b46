// Saved inversions and Imagic results, changed in every way a hostile or broken file can be:
// loadInversion / loadImagic, and an edit or generation from whatever they accept, must end in a
// value or a documented error (test/fuzz/outcome.ts).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { loadImagic, loadInversion, loadModel, type StableDiffusionModel } from '../../lib/index.js';
import { rejectsWithCode, repoRoot } from '../helpers.js';
import { joinSafetensors, safetensorsMutation, splitSafetensors } from './arbitraries.js';
import { budget } from './budget.js';
import { endsWell } from './outcome.js';

const work = mkdtempSync(join(tmpdir(), 'torchedit-fuzz-safetensors-'));
let model: StableDiffusionModel;
let inversionFile: Buffer;
let imagicDir: string;

before(async () => {
  model = await loadModel();
  const image = join(repoRoot, 'examples', 'red-circle.png');
  const inversion = await model.invert(image, { steps: 3, seed: 0, sourcePrompt: 'a red circle' });
  await inversion.save(join(work, 'valid.safetensors'));
  inversion.dispose();
  inversionFile = readFileSync(join(work, 'valid.safetensors'));
  const imagic = await model.imagic(image, 'a blue circle', { embedding: { steps: 2 }, finetune: { steps: 2 }, seed: 0 });
  imagicDir = join(work, 'imagic');
  await imagic.save(imagicDir);
  imagic.dispose();
});

after(() => {
  model?.dispose();
  rmSync(work, { recursive: true, force: true });
});

/** What a load may reject with: not a valid file, or another model's. */
const loadCodes = ['ERR_FILE_FORMAT', 'ERR_MODEL_MISMATCH'] as const;
/** What a run from an accepted file may reject with (a timed-out job is aborted). */
const runCodes = ['ERR_SHAPE', 'ERR_DTYPE', 'ERR_FORWARD', 'ERR_ABORTED'] as const;

test('a changed inversion file loads and edits, or is refused with a documented code', async () => {
  let n = 0;
  await fc.assert(
    fc.asyncProperty(safetensorsMutation, async (mutation) => {
      const path = join(work, `inversion-${n++}.safetensors`);
      writeFileSync(path, mutation.apply(inversionFile));
      const loaded = await endsWell(() => loadInversion(path, model), loadCodes);
      rmSync(path);
      if (!loaded.ok) return;
      using inversion = loaded.value;
      const edited = await endsWell(
        () => inversion.edit({ concepts: [{ prompt: 'blue' }], skip: 1, signal: AbortSignal.timeout(10_000) }),
        ['ERR_INVALID_OPTION', ...runCodes],
      );
      if (edited.ok) edited.value.dispose();
    }),
    budget(60),
  );
});

test('a changed Imagic result loads and generates, or is refused with a documented code', async () => {
  let n = 0;
  await fc.assert(
    fc.asyncProperty(safetensorsMutation, async (mutation) => {
      const dir = join(work, `imagic-${n++}`);
      mkdirSync(dir);
      symlinkSync(join(imagicDir, 'unet.pt'), join(dir, 'unet.pt'));
      writeFileSync(join(dir, 'imagic.safetensors'), mutation.apply(readFileSync(join(imagicDir, 'imagic.safetensors'))));
      const loaded = await endsWell(() => loadImagic(dir, model), loadCodes);
      rmSync(dir, { recursive: true });
      if (!loaded.ok) return;
      using result = loaded.value;
      const generated = await endsWell(
        () => result.generate({ steps: 2, seed: 0, signal: AbortSignal.timeout(10_000) }),
        ['ERR_INVALID_OPTION', ...runCodes],
      );
      if (generated.ok) generated.value.dispose();
    }),
    budget(60),
  );
});

// Minimal cases the properties found, kept as regressions: each was a TypeError (or a tensor of the
// wrong shape passed on to the native code) before the reader checked it.
// biome-ignore lint/suspicious/noExplicitAny: the regressions write wrong headers on purpose
const regressions: [label: string, change: (header: Record<string, any>) => unknown][] = [
  ['data_offsets is not an array (NaN written as null)', (h) => ({ ...h, x0: { ...h.x0, data_offsets: null } })],
  ['a tensor entry is null', (h) => ({ ...h, x0: null })],
  ['shape is a string', (h) => ({ ...h, x0: { ...h.x0, shape: 'x' } })],
  ['shape has a negative size', (h) => ({ ...h, zs: { ...h.zs, shape: [-1, ...h.zs.shape.slice(1)] } })],
  ['dtype names an Object.prototype key', (h) => ({ ...h, x0: { ...h.x0, dtype: 'constructor' } })],
  ['two tensors share bytes', (h) => ({ ...h, zs: { ...h.zs, data_offsets: h.xts.data_offsets } })],
  ['the header is null', () => null],
  ['__metadata__ is null', (h) => ({ ...h, __metadata__: null })],
  ['a metadata value is a number', (h) => ({ ...h, __metadata__: { ...h.__metadata__, version: 1 } })],
  ['settings is a JSON array', (h) => ({ ...h, __metadata__: { ...h.__metadata__, settings: '[]' } })],
  ['settings.steps is a string', (h) => withSettings(h, { steps: '3' })],
  ['settings.seed is not decimal', (h) => withSettings(h, { seed: '-1' })],
  ['settings.width is not the latents width', (h) => withSettings(h, { width: 128 })],
  ['x0 has the wrong shape', (h) => reshaped(h, 'x0', [1, 4, 4, 16])],
  ['timesteps are float64', (h) => ({ ...h, timesteps: { ...h.timesteps, dtype: 'F64' } })],
];

// biome-ignore lint/suspicious/noExplicitAny: the regressions write wrong headers on purpose
function withSettings(h: Record<string, any>, change: object): Record<string, any> {
  return { ...h, __metadata__: { ...h.__metadata__, settings: JSON.stringify({ ...JSON.parse(h.__metadata__.settings), ...change }) } };
}

// biome-ignore lint/suspicious/noExplicitAny: as above
function reshaped(h: Record<string, any>, name: string, shape: number[]): Record<string, any> {
  return { ...h, [name]: { ...h[name], shape } };
}

for (const [label, change] of regressions) {
  test(`regression: an inversion file where ${label} is ERR_FILE_FORMAT`, async () => {
    const { header, data } = splitSafetensors(inversionFile);
    const path = join(work, 'regression.safetensors');
    writeFileSync(path, joinSafetensors(JSON.stringify(change(header)), data));
    await rejectsWithCode(loadInversion(path, model), 'ERR_FILE_FORMAT');
  });
}

test('regression: a header length near 2^64 or past the end is ERR_FILE_FORMAT, before any allocation', async () => {
  for (const declared of [2n ** 64n - 1n, 2n ** 63n, BigInt(inversionFile.length)]) {
    const path = join(work, 'regression.safetensors');
    const bytes = Buffer.from(inversionFile);
    bytes.writeBigUInt64LE(declared);
    writeFileSync(path, bytes);
    await rejectsWithCode(loadInversion(path, model), 'ERR_FILE_FORMAT');
  }
});
