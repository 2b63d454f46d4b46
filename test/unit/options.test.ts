// The option schema (lib/options/schema.ts) and what derives from it: validation with the stable
// messages naming the option (or, for the CLI, the flag), defaults merged from model.json
// `recommended`, and the checks of `recommended` itself. Pure: no addon, no model.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { flagNamer, flaggedOptions, attributeOf, optionsFromFlags, parseConcept, conceptSettings } from '../../lib/cli/flags.js';
import { readModelJson } from '../../lib/model/config.js';
import { defaultsFor, getPath, libraryDefaults } from '../../lib/options/defaults.js';
import {
  checkValue,
  validateEditOptions,
  validateImagicChooseEtaOptions,
  validateImagicOptions,
  validateImagicSweepOptions,
  validateInvertOptions,
  validateTextToImageOptions,
  type ValidationContext,
} from '../../lib/options/resolve.js';
import { defaultsPath, groupNames, hasValueDefault, optionSchema, type GroupName } from '../../lib/options/schema.js';
import { testBundle } from '../helpers.js';

const limits = { numTrainTimesteps: 1000, sizeMultiple: 64, imageSize: 64 };
const ctx: ValidationContext = { defaults: libraryDefaults, limits };

/** Asserts `action` throws ERR_INVALID_OPTION with exactly `message` and `option` as the path. */
function throwsOption(action: () => unknown, message: string, option: string): void {
  assert.throws(action, (error: { code?: string; message?: string; option?: string }) => {
    assert.equal(error.code, 'ERR_INVALID_OPTION');
    assert.equal(error.message, message);
    assert.equal(error.option, option);
    return true;
  });
}

test('every library default passes its own option check', () => {
  for (const group of groupNames) {
    for (const spec of optionSchema[group].options.filter(hasValueDefault)) {
      const value = getPath(libraryDefaults[optionSchema[group].defaultsKey], defaultsPath(spec));
      assert.equal(value, spec.default, `${group}.${spec.name}`);
      assert.ok(checkValue(spec.kind, value, { ...limits, inversionSteps: 100 }).ok, `${group}.${spec.name} = ${String(value)}`);
    }
  }
});

test('validation keeps the stable wording, names the option and puts its path on the error', () => {
  throwsOption(
    () => validateTextToImageOptions({ steps: 0 }, ctx),
    'Expected integer between 1 and 1000 for steps but received 0 of type number',
    'steps',
  );
  throwsOption(
    () => validateTextToImageOptions({ guidanceScale: -1 }, ctx),
    'Expected number in [0, 1000] for guidanceScale but received -1 of type number',
    'guidanceScale',
  );
  throwsOption(
    () => validateTextToImageOptions({ seed: -1 }, ctx),
    'Expected non-negative integer seed for seed but received -1 of type number',
    'seed',
  );
  throwsOption(
    () => validateTextToImageOptions({ width: 100 }, ctx),
    'Expected width to be a multiple of 64 but received 100 (nearest valid: 64 or 128)',
    'width',
  );
  throwsOption(() => validateInvertOptions({ eta: 0 }, ctx), 'Expected number in (0, 1] for eta but received 0 of type number', 'eta');
  throwsOption(
    () => validateInvertOptions({ resize: 'stretch' as never }, ctx),
    "Expected one of 'cover', 'contain', 'fill' for resize but received 'stretch' of type string",
    'resize',
  );
  const edit = { ...ctx, limits: { ...limits, inversionSteps: 10 } };
  throwsOption(
    () => validateEditOptions({ skip: 10 }, edit),
    'Expected integer between 0 and 9 for skip but received 10 of type number',
    'skip',
  );
  throwsOption(
    () => validateEditOptions({ skip: 0.99 }, edit),
    "Expected integer below the inversion's 10 steps for skip but received 0.99 of type number",
    'skip',
  );
  throwsOption(
    () => validateEditOptions({ concepts: [{ prompt: 'a' }, { prompt: 'b', threshold: 1 }] }, edit),
    'Expected number in [0, 1) for concepts[1].threshold but received 1 of type number',
    'concepts[1].threshold',
  );
  throwsOption(
    () => validateEditOptions({ concepts: ['blue' as never] }, edit),
    "Expected object with a prompt for concepts[0] but received 'blue' of type string",
    'concepts[0]',
  );
  throwsOption(
    () => validateEditOptions({ concepts: [{ prompt: '' }] }, edit),
    "Expected non-empty string for concepts[0].prompt but received '' of type string",
    'concepts[0].prompt',
  );
  throwsOption(
    () => validateImagicOptions({ embedding: { lr: 0 } }, ctx),
    'Expected number in (0, 1] for embedding.lr but received 0 of type number',
    'embedding.lr',
  );
  throwsOption(
    () => validateImagicOptions({ finetune: 3 as never }, ctx),
    'Expected object { steps, lr, parameters } for finetune but received 3 of type number',
    'finetune',
  );
  throwsOption(
    () => validateImagicSweepOptions({ etas: [0.5, 11] }, ctx),
    'Expected number in [-10, 10] for etas[1] but received 11 of type number',
    'etas[1]',
  );
  throwsOption(() => validateImagicSweepOptions({ etas: [] }, ctx), 'Expected a non-empty array of numbers for etas', 'etas');
});

test('named for the CLI, the same errors name the flags, from the schema', () => {
  const named = (group: GroupName, extra = {}): ValidationContext => ({ ...ctx, limits: { ...limits, ...extra }, name: flagNamer(group) });
  throwsOption(
    () => validateTextToImageOptions({ guidanceScale: -1 }, named('textToImage')),
    'Expected number in [0, 1000] for --guidance but received -1 of type number',
    'guidanceScale',
  );
  throwsOption(
    () => validateTextToImageOptions({ height: 65 }, named('textToImage')),
    'Expected --height to be a multiple of 64 but received 65 (nearest valid: 64 or 128)',
    'height',
  );
  throwsOption(
    () => validateInvertOptions({ sourceGuidanceScale: 2000 }, named('invert')),
    'Expected number in [0, 1000] for --source-guidance but received 2000 of type number',
    'sourceGuidanceScale',
  );
  throwsOption(
    () => validateEditOptions({ skip: 50 }, named('edit', { inversionSteps: 20 })),
    'Expected integer between 0 and 19 for --skip but received 50 of type number',
    'skip',
  );
  throwsOption(
    () => validateEditOptions({ concepts: [{ prompt: 'a' }, { prompt: 'b', warmup: 1.5 }] }, named('edit', { inversionSteps: 20 })),
    'Expected integer between 0 and 100000 for warmup of --concept #2 but received 1.5 of type number',
    'concepts[1].warmup',
  );
  throwsOption(
    () => validateImagicOptions({ finetune: { lr: 2 } }, named('imagic')),
    'Expected number in (0, 1] for --finetune-lr but received 2 of type number',
    'finetune.lr',
  );
  throwsOption(
    () => validateImagicSweepOptions({ etas: [1, 2, 30] }, named('imagicGenerate')),
    'Expected number in [-10, 10] for --eta #3 but received 30 of type number',
    'etas[2]',
  );
  throwsOption(
    () => validateImagicSweepOptions({ etas: [1], seed: -2 }, named('imagicGenerate')),
    'Expected non-negative integer seed for --sample-seed but received -2 of type number',
    'seed',
  );
});

test("chooseEta's grid and criterion come from the schema; a model may recommend its grid; a criterion function passes through", () => {
  assert.deepEqual(validateImagicChooseEtaOptions({}, ctx), { etas: [0.5, 0.6, 0.7, 0.8, 0.9, 1], criterion: { fidelity: 0.5, pairs: 8 } });
  const recommended = { ...ctx, defaults: defaultsFor({ imagicChooseEta: { etas: [0.8, 1.2] } }) };
  assert.deepEqual(validateImagicChooseEtaOptions({ criterion: { pairs: 2 } }, recommended), {
    etas: [0.8, 1.2],
    criterion: { fidelity: 0.5, pairs: 2 },
  });
  const scorer = () => 1;
  assert.equal(validateImagicChooseEtaOptions({ criterion: scorer }, ctx).criterion, scorer);
  throwsOption(
    () => validateImagicChooseEtaOptions({ etas: [] }, ctx),
    'Expected non-empty array of numbers in [-10, 10] for etas but received array of length 0',
    'etas',
  );
  throwsOption(
    () => validateImagicChooseEtaOptions({ criterion: { fidelity: -1 } }, ctx),
    'Expected number in [0, 1000] for criterion.fidelity but received -1 of type number',
    'criterion.fidelity',
  );
  throwsOption(
    () => validateImagicChooseEtaOptions({ criterion: 3 }, ctx),
    'Expected function of a candidate image, or { fidelity, pairs } for criterion but received 3 of type number',
    'criterion',
  );
});

test('resolved options are complete: defaults applied, seeds drawn, skip a count; the caller wins', () => {
  const t2i = validateTextToImageOptions({}, ctx);
  assert.deepEqual(
    { ...t2i, seed: typeof t2i.seed },
    { negativePrompt: '', steps: 50, guidanceScale: 7.5, eta: 0, seed: 'bigint', width: 64, height: 64, batchSize: 1 },
  );
  assert.equal(validateTextToImageOptions({ seed: 7, steps: 3 }, ctx).seed, 7n);
  const edit = validateEditOptions({ concepts: [{ prompt: 'blue' }] }, { ...ctx, limits: { ...limits, inversionSteps: 100 } });
  assert.equal(edit.skip, 36);
  assert.deepEqual(edit.concepts, [
    { prompt: 'blue', scale: 7, remove: false, warmup: 2, cooldown: null, threshold: 0.95, weight: 1, implicitMask: null },
  ]);
  assert.equal(validateEditOptions({ skip: 0.3 }, { ...ctx, limits: { inversionSteps: 10 } }).skip, 3);
  assert.deepEqual(validateImagicOptions({ embedding: { steps: 5 } }, ctx).embedding, { steps: 5, lr: 0.002 });
  // null is unset, as `??` treats it
  assert.equal(validateTextToImageOptions({ steps: null as never }, ctx).steps, 50);

  const recommended = defaultsFor({
    edit: { skipFraction: 0.6, guidanceScale: 5 },
    imagic: { finetune: { lr: 1e-4 } },
    concept: { threshold: 0.9 },
  });
  const withModel = { defaults: recommended, limits: { ...limits, inversionSteps: 10 } };
  const resolved = validateEditOptions({ concepts: [{ prompt: 'x' }] }, withModel);
  assert.deepEqual([resolved.skip, resolved.guidanceScale, resolved.concepts[0].threshold], [6, 5, 0.9]);
  assert.equal(validateEditOptions({ guidanceScale: 9 }, withModel).guidanceScale, 9, 'an option passed wins');
  assert.deepEqual(
    recommended.imagic.finetune,
    { steps: 1500, lr: 1e-4, parameters: 'all' },
    "a partial stage keeps the library's other fields",
  );
  assert.equal(validateImagicOptions({}, ctx).finetune.parameters, 'all');
  assert.deepEqual(validateImagicOptions({ finetune: { parameters: ['attn2.to_k'] } }, ctx).finetune.parameters, ['attn2.to_k']);
  for (const bad of ['some', [], [''], 'attn2']) {
    assert.throws(
      () => validateImagicOptions({ finetune: { parameters: bad as string[] } }, ctx),
      /Expected one of 'all', 'attention', 'cross-attention', or a non-empty array of name patterns for finetune.parameters/,
    );
  }
  assert.equal(libraryDefaults.edit.guidanceScale, 15, "the library defaults are not changed by a model's");
});

test('CLI flags come from the schema: unique per command, mapped back to options, concept keys from the concept table', () => {
  for (const groups of [['textToImage'], ['invert'], ['edit', 'invert'], ['imagic', 'imagicGenerate']] as GroupName[][]) {
    const flags = groups.flatMap((g) => flaggedOptions(g).map((o) => o.flag!));
    assert.equal(new Set(flags).size, flags.length, `${groups.join('+')}: ${flags.join(' ')}`);
  }
  assert.deepEqual(optionsFromFlags('imagic', { [attributeOf('--embedding-lr')]: 0.01, seed: 3n, steps: 9 }), {
    embedding: { lr: 0.01 },
    seed: 3n,
  });
  assert.deepEqual(optionsFromFlags('edit', { guidance: 4, momentumBeta: 0.5, concept: [] }), {
    guidanceScale: 4,
    momentumBeta: 0.5,
    concepts: [],
  });
  assert.deepEqual(conceptSettings, ['scale', 'warmup', 'cooldown', 'threshold', 'weight', 'mask']);
  assert.deepEqual(parseConcept('-red:scale=5,cooldown=40'), { prompt: 'red', remove: true, scale: 5, cooldown: 40 });
  assert.throws(
    () => parseConcept('+blue:size=3'),
    /Unknown concept setting "size"; expected one of scale, warmup, cooldown, threshold, weight/,
  );
});

test('model.json `recommended` is checked by the schema, with the bounds of the same model.json', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'torchedit-recommended-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(join(testBundle(), 'model.json'), join(dir, 'model.json'));
  const base = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  const withRecommended = (recommended: unknown) => {
    writeFileSync(join(dir, 'model.json'), JSON.stringify({ ...base, recommended }));
    return readModelJson(dir);
  };
  const rejects = (recommended: unknown, message: RegExp) =>
    assert.rejects(withRecommended(recommended), (e: { code: string; message: string }) => {
      assert.equal(e.code, 'ERR_MODEL_CONFIG');
      assert.match(e.message, message);
      return true;
    });
  await rejects(
    { textToImage: { steps: base.scheduler.numTrainTimesteps + 1 } },
    new RegExp(`expected integer between 1 and ${base.scheduler.numTrainTimesteps} for recommended\\.textToImage\\.steps but found`),
  );
  await rejects({ edit: { skipFraction: 3 } }, /expected number in \(0, 1\) for recommended\.edit\.skipFraction but found 3/);
  await rejects(
    { edit: { skip: 3 } },
    /expected one of the fields guidanceScale, skipFraction, maskMode, implicitMask for recommended\.edit\.skip/,
  );
  await rejects({ inversion: { eta: 0.5 } }, /one of the fields sourceGuidanceScale, steps for recommended\.inversion\.eta/);
  await rejects({ imagic: { embedding: 3 } }, /expected an object for recommended\.imagic\.embedding but found 3/);
  await rejects({ imagic: { embedding: { lr: 0 } } }, /expected number in \(0, 1\] for recommended\.imagic\.embedding\.lr/);
  await rejects(
    { textToImages: {} },
    /one of the groups textToImage, inversion, edit, concept, imagic, imagicGenerate, imagicChooseEta for recommended\.textToImages/,
  );
  const config = await withRecommended({ imagic: { finetune: { steps: 10 } }, edit: { maskMode: 'sum' } });
  assert.deepEqual(config.recommended, { imagic: { finetune: { steps: 10 } }, edit: { maskMode: 'sum' } });
});

test("scheduler 'dpmsolver++' selects LEDITS++'s defaults (dpmDefault) over the library's and model.json's; explicit values win", () => {
  // every dpmDefault passes its own option's check
  for (const group of groupNames)
    for (const spec of optionSchema[group].options.filter((o) => o.dpmDefault !== undefined))
      assert.ok(checkValue(spec.kind, spec.dpmDefault, { ...limits, inversionSteps: 50 }).ok, `${group}.${spec.name}`);
  const recommended = {
    ...ctx,
    defaults: defaultsFor({ inversion: { steps: 20 }, edit: { skipFraction: 0.6 }, concept: { threshold: 0.5 } }),
  };
  const ddpm = validateInvertOptions({}, recommended);
  assert.deepEqual([ddpm.scheduler, ddpm.steps, ddpm.skipNoisiest], ['ddpm', 20, 0]);
  const dpm = validateInvertOptions({ scheduler: 'dpmsolver++' }, recommended);
  assert.deepEqual([dpm.scheduler, dpm.steps, dpm.skipNoisiest, dpm.eta], ['dpmsolver++', 50, 0.15, 1]);
  assert.equal(validateInvertOptions({ scheduler: 'dpmsolver++', steps: 12, skipNoisiest: 0 }, ctx).steps, 12);
  throwsOption(
    () => validateInvertOptions({ scheduler: 'dpmsolver++', eta: 0.5 }, ctx),
    "Expected 1 with scheduler 'dpmsolver++' (its SDE fixes the noise) for eta but received 0.5 of type number",
    'eta',
  );
  // An edit takes its inversion's scheduler from the context.
  const edit = (scheduler: 'ddpm' | 'dpmsolver++') =>
    validateEditOptions({ concepts: [{ prompt: 'x' }] }, { ...recommended, limits: { ...limits, inversionSteps: 50 }, scheduler });
  const a = edit('dpmsolver++');
  assert.deepEqual([a.skip, a.momentumScale, a.maskMode], [0, 0, 'sum']);
  assert.deepEqual([a.concepts[0].scale, a.concepts[0].warmup, a.concepts[0].threshold], [5, 0, 0.9]);
  const b = edit('ddpm');
  assert.deepEqual([b.skip, b.momentumScale, b.maskMode, b.concepts[0].threshold], [30, 0.3, 'channel', 0.5]);
});
