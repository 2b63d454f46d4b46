// Every option of every call, from lib/options/schema.ts, given random values: each either one
// in range (so the call runs) or any JavaScript value. Each call ends in a value or a documented
// error: ERR_INVALID_OPTION for a bad option, ERR_ABORTED when a valid but long job runs out of
// its time (the signal every case passes). Also loadModel's and readImage's options.
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import type { ErrorCode } from '../../lib/index.js';
import { loadModel, readImage, type ImagicResult, type Inversion, type StableDiffusionModel } from '../../lib/index.js';
import { optionSchema, type GroupName, type Kind } from '../../lib/options/schema.js';
import { rejectsWithCode, repoRoot } from '../helpers.js';
import { anyValue, hostileText } from './arbitraries.js';
import { budget } from './budget.js';
import { endsWell } from './outcome.js';

const image = join(repoRoot, 'examples', 'red-circle.png');

/** A value the kind accepts, kept small so that a case runs in a second or two. */
function inRange(kind: Kind): fc.Arbitrary<unknown> {
  switch (kind.type) {
    case 'integer':
      return fc.integer({ min: kind.min, max: kind.min + 3 });
    case 'number':
      return fc.double({
        min: kind.min,
        max: Math.min(kind.max, kind.min + 10),
        noNaN: true,
        minExcluded: kind.minExclusive,
        maxExcluded: true,
      });
    case 'string':
      return kind.nonEmpty ? hostileText.filter((s) => s.length > 0) : hostileText;
    case 'boolean':
      return fc.boolean();
    case 'enum':
      return fc.constantFrom(...kind.values);
    case 'seed':
      return fc.oneof(fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
    case 'imageSide':
      return fc.constantFrom(64, 128);
    case 'skip':
      return fc.oneof(fc.integer({ min: 0, max: 2 }), fc.double({ min: 0.01, max: 0.99, noNaN: true }));
    case 'mask':
      return fc.constantFrom(image, '/nonexistent.png', Buffer.from('not an image'));
    case 'list':
      return fc.array(options(kind.of), { maxLength: 3 });
    case 'patterns':
      return fc.oneof(fc.constantFrom(...kind.presets), fc.array(hostileText, { maxLength: 3 }));
    case 'numbers':
      return fc.array(fc.double({ min: kind.min, max: kind.max, noNaN: true }), { minLength: 1, maxLength: 3 });
  }
}

/** An options object for a group: some of its options, each in range or anything, maybe an unknown key. */
function options(group: GroupName): fc.Arbitrary<Record<string, unknown>> {
  const specs = optionSchema[group].options;
  return fc
    .tuple(
      fc
        .subarray([...specs])
        .chain((chosen) =>
          fc.tuple(
            ...chosen.map((spec) => fc.tuple(fc.constant(spec.name), fc.oneof({ weight: 2, arbitrary: inRange(spec.kind) }, anyValue))),
          ),
        ),
      fc.option(fc.tuple(fc.string({ maxLength: 6 }), anyValue)),
    )
    .map(([pairs, extra]) => {
      const out: Record<string, unknown> = {};
      for (const [name, value] of pairs as [string, unknown][]) {
        const [head, tail] = name.split('.');
        if (tail === undefined) out[head] = value;
        else out[head] = { ...(out[head] as object), [tail]: value };
      }
      if (extra) out[extra[0]] = extra[1];
      return out;
    });
}

/** Stands for a fresh `AbortSignal.timeout(4000)`, made when the case runs (a shrunk case reruns). */
const TIME_LIMIT = Symbol('time limit');

/** A whole options argument: usually an object as above (with a time limit), sometimes anything at all. */
function argument(group: GroupName): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 6, arbitrary: options(group).map((o) => ({ ...o, signal: TIME_LIMIT })) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(options(group), anyValue, anyValue)
        // An absent signal still gets the time limit: a valid long job must not run for minutes here.
        .map(([o, signal, onProgress]) => ({ ...o, signal: signal ?? TIME_LIMIT, onProgress })),
    },
    { weight: 1, arbitrary: anyValue.filter((v) => v !== undefined && v !== null) },
  );
}

// ERR_OUT_OF_MEMORY: a valid but huge size (width 2^31) asks libtorch for more than the machine has.
const codes: ErrorCode[] = ['ERR_INVALID_OPTION', 'ERR_ABORTED', 'ERR_IMAGE_READ', 'ERR_OUT_OF_MEMORY'];
let model: StableDiffusionModel;
let inversion: Inversion;
let imagic: ImagicResult;

before(async () => {
  model = await loadModel(undefined, { onWarning: () => {} });
  inversion = await model.invert(image, { steps: 4, seed: 0 });
  imagic = await model.imagic(image, 'a blue circle', { embedding: { steps: 1 }, finetune: { steps: 1 }, seed: 0 });
});
after(() => {
  inversion?.dispose();
  imagic?.dispose();
  model?.dispose();
});

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Disposes what a call returned (a result, an inversion, an array of results). */
function dispose(value: unknown): void {
  for (const v of Array.isArray(value) ? value : [value]) (v as { dispose?: () => void })?.dispose?.();
}

const calls: [name: string, group: GroupName, call: (options: unknown) => Promise<unknown>][] = [
  ['model.generate', 'textToImage', (o) => model.generate('a red circle', o as never)],
  ['model.invert', 'invert', (o) => model.invert(image, o as never)],
  ['inversion.edit', 'edit', (o) => inversion.edit(o as never)],
  ['model.imagic', 'imagic', (o) => model.imagic(image, 'a blue circle', o as never)],
  ['imagic.generate', 'imagicGenerate', (o) => imagic.generate(o as never)],
  ['imagic.sweep', 'imagicGenerate', (o) => imagic.sweep({ etas: [0.5, 1], ...(o as object) } as never)],
];

for (const [name, group, call] of calls) {
  test(`${name} with random options ends in a result or a documented error`, async () => {
    await fc.assert(
      fc.asyncProperty(argument(group), async (o) => {
        const limited = isObject(o) && o.signal === TIME_LIMIT ? { ...o, signal: AbortSignal.timeout(4000) } : o;
        const outcome = await endsWell(() => call(limited), codes);
        if (outcome.ok) dispose(outcome.value);
      }),
      budget(40, 6),
    );
  });
}

test('readImage and model.encodeImage with random options', async () => {
  const sizes = fc.oneof(fc.constantFrom(64, 128, 1, 63), anyValue);
  const imageOptions = fc.record(
    {
      width: sizes,
      height: sizes,
      resize: fc.oneof(fc.constantFrom('cover', 'contain', 'fill'), anyValue),
      background: anyValue,
      sample: anyValue,
      seed: anyValue,
    },
    { requiredKeys: [] },
  );
  await fc.assert(
    fc.asyncProperty(fc.oneof(imageOptions, anyValue), async (o) => {
      await endsWell(() => readImage(image, o as never), codes);
      const encoded = await endsWell(() => model.encodeImage(image, o as never), codes);
      if (encoded.ok) encoded.value.dispose();
    }),
    budget(100),
  );
});

test('loadModel with random options', async () => {
  const loadOptions = fc.record(
    {
      device: fc.oneof(fc.constantFrom('cpu', 'auto', 'cuda', 'cuda:7', 'tpu'), anyValue),
      dtype: fc.oneof(fc.constantFrom('float32', 'bfloat16', 'float16', 'int8'), anyValue),
      autocast: fc.oneof(fc.constantFrom('bfloat16', 'float16'), anyValue),
      onWarning: anyValue,
    },
    { requiredKeys: [] },
  );
  await fc.assert(
    fc.asyncProperty(fc.oneof(loadOptions, anyValue), async (o) => {
      // ERR_MODEL_MISMATCH: shapes-64 cast to bfloat16 fails its load probe (its UNet computes the
      // timestep embedding in float32 and feeds it to a bfloat16 linear layer).
      const allowed: ErrorCode[] = [...codes, 'ERR_DEVICE', 'ERR_DEVICE_UNAVAILABLE', 'ERR_MODEL_MISMATCH'];
      const loaded = await endsWell(() => loadModel(undefined, o as never), allowed);
      if (loaded.ok) loaded.value.dispose();
    }),
    budget(15, 5),
  );
});

test('regression: null options, a signal that is not an AbortSignal and float16 on the CPU are ERR_INVALID_OPTION', async () => {
  // Each was a TypeError (reading a property of null, calling signal.addEventListener) or, for
  // float16, ERR_MODEL_MISMATCH from the load probe (libtorch's CPU kernels lack float16 layer norm).
  await rejectsWithCode(model.encodeImage(image, null as never), 'ERR_INVALID_OPTION');
  await rejectsWithCode(model.readImage(image, null as never), 'ERR_INVALID_OPTION');
  await rejectsWithCode(loadModel(undefined, null as never), 'ERR_INVALID_OPTION');
  await rejectsWithCode(model.encodePrompt('a', { signal: 42 as never }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(model.decodeLatents(inversion.tensors.x0, { onProgress: 'x' as never }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(loadModel(undefined, { dtype: 'float16' }), 'ERR_INVALID_OPTION');
});
