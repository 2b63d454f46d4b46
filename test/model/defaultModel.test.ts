// The shipped default model (models/shapes-64): it loads with loadModel() and no path, and a
// LEDITS colour edit of a held-out picture does what the evaluation (eval/run.ts) measures.
// Nothing here is skipped: the bundle is part of the package, so its absence is a failure.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { configure, defaultModelPath, loadModel, type StableDiffusionModel } from '../../lib/index.js';
import { caseTensor, makeHeldout } from '../../eval/heldout.js';
import { analyzeBatch, repoRoot } from '../../eval/score.js';

/**
 * A held-out red picture (data.py index TEST_START + 100000 + CASE, one of the evaluation's
 * reported cases) that the model's own recommended settings (model.json `recommended`, from
 * `npm run eval`) turn blue with "+blue", shape kept, with the evaluation's inversion seed.
 */
const CASE = 3;
const SEED = 100_000 + CASE;

let modelPromise: Promise<StableDiffusionModel> | undefined;
function shippedModel(): Promise<StableDiffusionModel> {
  modelPromise ??= (async () => {
    const json = join(defaultModelPath, 'model.json');
    assert.ok(
      existsSync(json),
      `the shipped default model is missing: ${json} does not exist. ` +
        'It is part of the package: export it with /usr/bin/python3 scripts/tinysd/export.py --ckpt <checkpoint> --out models/shapes-64',
    );
    configure({ threads: 1 });
    return loadModel();
  })();
  return modelPromise;
}

test('loadModel() with no path loads the shipped shapes-64 model', async () => {
  const model = await shippedModel();
  assert.equal(model.path, defaultModelPath);
  assert.equal(model.config.name, 'shapes-64');
  assert.equal(model.imageSize, 64);
  assert.equal(model.device, 'cpu');
  const states = await model.encodePrompt('a red circle on the left');
  assert.deepEqual(states.shape, [1, model.config.textEncoder.maxLength, model.config.textEncoder.hiddenSize]);
  states.dispose();
});

test('a LEDITS concept edit "+blue" with the model\'s recommended defaults turns a held-out red shape blue and keeps the shape', async () => {
  const model = await shippedModel();
  assert.ok(model.config.recommended?.edit?.skipFraction, 'the shipped model recommends its edit settings');
  const dir = mkdtempSync(join(tmpdir(), 'torchedit-default-model-'));
  try {
    const set = makeHeldout(dir, 1, 100_000 + CASE);
    const c = set.cases[0];
    assert.equal(c.color, 'red', 'the chosen held-out case is a red picture');
    using x = caseTensor(set, 0);
    // every setting not given here comes from models/shapes-64/model.json `recommended`
    using inversion = await model.invert(x, { seed: SEED });
    using edited = await inversion.edit({ concepts: [{ prompt: 'blue' }] });
    const original = set.images.data;
    const [after] = analyzeBatch(dir, 'edited', [edited.image.raw()], 64, [original]);
    const seen = JSON.stringify({
      color: after.color,
      shape: after.shape,
      bg: after.bg,
      shift: after.centroid_shift,
      bgPsnr: after.bg_psnr,
    });
    assert.equal(after.color, 'blue', `analyze.py: ${seen}`);
    assert.equal(after.shape, c.shape, `the ${c.shape} keeps its shape; analyze.py: ${seen}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the evaluation's analyser names the shape of held-out pictures and of their VAE round trips", () => {
  // eval/ measures "same shape" with scripts/tinysd/analyze.py; a wrong analyser would make every
  // edit number wrong. Ground truth comes from the data generator; offset 300000 is not an eval case.
  const out = spawnSync(
    '/usr/bin/python3',
    [join(repoRoot, 'scripts', 'tinysd', 'check_analyzer.py'), '--n', '60', '--bundle', defaultModelPath],
    { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } },
  );
  assert.equal(out.status, 0, out.stderr);
  const [originals, roundTrips] = out.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { shape: number; color: number; pos: number });
  assert.deepEqual([originals.shape, originals.color, originals.pos], [1, 1, 1], out.stdout);
  assert.ok(roundTrips.shape >= 0.95 && roundTrips.color === 1 && roundTrips.pos === 1, out.stdout);
});
