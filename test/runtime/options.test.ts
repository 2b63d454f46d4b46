/**
 * The native option readers (native/napi/options.cc) require every field: the C++ structs have
 * no defaults, so a field TypeScript forgot is an error naming it, never a silent C++ value.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { native } from '../../lib/binding.js';
import { Tensor } from '../../lib/index.js';

const invalid = (field: string) => (e: { code?: string; message?: string }) =>
  e.code === 'ERR_INVALID_ARGUMENT' && (e.message ?? '').includes(field);

test('a missing or mistyped option field is ERR_INVALID_ARGUMENT naming it', () => {
  using uncond = Tensor.zeros([1, 4, 2, 2]);
  using concepts = Tensor.zeros([1, 1, 4, 2, 2]);
  const concept = {
    scale: 1,
    remove: false,
    warmup: 0,
    cooldown: null,
    threshold: 0,
    weight: 1,
    implicitMask: 'off' as const,
    tokenCount: 1,
  };
  const options = { momentumScale: 0, momentumBeta: 0.5, maskMode: 'channel' as const, concepts: [concept] };
  const sega = (o: unknown) =>
    native()
      .testing.semanticGuidance(uncond.native, concepts.native, o as typeof options, 1)
      .forEach((h) => h.dispose());
  sega(options);
  const { cooldown: _, ...noCooldown } = concept;
  assert.throws(() => sega({ ...options, concepts: [noCooldown] }), invalid('options.concepts[0].cooldown'));
  const { momentumBeta: __, ...noBeta } = options;
  assert.throws(() => sega(noBeta), invalid('options.momentumBeta'));
  assert.throws(() => sega({ ...options, maskMode: 'max' }), invalid('options.maskMode'));
  assert.throws(() => sega({ ...options, concepts: [{ ...concept, implicitMask: 'cross' }] }), invalid('options.concepts[0].implicitMask'));
  assert.throws(() => sega({ ...options, concepts: [{ ...concept, warmup: 1.5 }] }), invalid('options.concepts[0].warmup'));
  assert.throws(() => sega(null), invalid('options'));
});

test('the model config is read field by field too', () => {
  const config = {
    sampleSize: 8,
    latentChannels: 4,
    vaeScaleFactor: 8,
    scalingFactor: 0.18215,
    predictionType: 'epsilon',
    textEncoder: { maxLength: 77, hiddenSize: 32 },
    scheduler: {
      numTrainTimesteps: 1000,
      betaSchedule: 'scaled_linear',
      betaStart: 0.00085,
      betaEnd: 0.012,
      stepsOffset: 1,
      setAlphaToOne: false,
    },
  };
  assert.throws(
    () => native().NativeModel.load('/nonexistent', config as never, 'cpu', null, null),
    invalid('config.scheduler.timestepSpacing'),
  );
});
