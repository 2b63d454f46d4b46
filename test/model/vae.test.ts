import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { loadModel, Tensor } from '../../lib/index.js';
import { maxAbsDiff, rejectsWithCode, testBundle } from '../helpers.js';

const image = () =>
  sharp({ create: { width: 96, height: 80, channels: 3, background: { r: 200, g: 30, b: 60 } } })
    .png()
    .toBuffer();

test('encodeImage gives scaled posterior-mean latents; decodeLatents gives images of the right size', async () => {
  const model = await loadModel(testBundle());
  const input = await image();
  const a = await model.encodeImage(input);
  assert.deepEqual(a.shape, [1, 4, 8, 8]);
  const b = await model.encodeImage(input);
  assert.deepEqual(await a.data(), await b.data(), 'the posterior mean is deterministic');
  const wide = await model.encodeImage(input, { width: 128, height: 64, resize: 'contain' });
  assert.deepEqual(wide.shape, [1, 4, 8, 16]);
  const decoded = await model.decodeLatents(wide);
  assert.deepEqual(decoded.shape, [1, 3, 64, 128]);
  const s1 = await model.encodeImage(input, { sample: true, seed: 1 });
  const s1again = await model.encodeImage(input, { sample: true, seed: 1 });
  const s2 = await model.encodeImage(input, { sample: true, seed: 2 });
  const [da, d1, d1b, d2] = await Promise.all([a, s1, s1again, s2].map(async (t) => (await t.data()) as Float32Array));
  assert.deepEqual(d1, d1b);
  assert.ok(maxAbsDiff(d1, d2) > 1e-3 && maxAbsDiff(da, d1) > 1e-3, 'samples differ from each other and from the mean');
});

test('images of a size the model cannot take are rejected before any work', async () => {
  const model = await loadModel(testBundle());
  await rejectsWithCode(model.encodeImage(await image(), { width: 100 }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(model.encodeImage('/nonexistent.png'), 'ERR_IMAGE_READ');
  await rejectsWithCode(model.decodeLatents(Tensor.zeros([1, 3, 8, 8])), 'ERR_FORWARD');
});

test('sharp and libtorch share the process without GLib conflicts', async () => {
  // Debian's libtorch pulls in the system GLib; sharp's libvips bundles its own. Loading libtorch
  // globally made every image operation print GLib-GObject-CRITICAL (lib/loader/load.ts).
  const { spawnSync } = await import('node:child_process');
  const { repoRoot } = await import('../helpers.js');
  const script = `
    import { loadModel } from './dist/lib/index.js';
    const model = await loadModel(${JSON.stringify(testBundle())});
    const result = await model.generate('x', { steps: 2, seed: 1 });
    const png = await result.image.toBuffer('png');
    const latents = await model.encodeImage(png);
    console.log(latents.shape.join('x'));`;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  assert.equal(out.stdout.trim(), '1x4x8x8');
  assert.doesNotMatch(out.stderr, /GLib|CRITICAL/);
});
