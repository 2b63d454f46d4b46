import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Module, Tensor, loadModule, type ModuleOutput } from '../../lib/index.js';
import { toTensor } from '../../lib/io/safetensors.js';
import { fixtureTensors, maxAbsDiff, rejectsWithCode, runtimeFixture } from '../helpers.js';

async function floats(output: ModuleOutput): Promise<Float32Array> {
  assert.ok(output instanceof Tensor, 'expected a tensor output');
  return (await output.data()) as Float32Array;
}

test('forward equals the output Python torch computed for the same TorchScript file', async () => {
  const module = await loadModule(runtimeFixture('affine.pt'));
  const io = await fixtureTensors('affine_io.safetensors');
  const out = await module.forward(toTensor(io.get('input')!));
  assert.ok(out instanceof Tensor);
  assert.deepEqual(out.shape, [3, 5]);
  assert.ok(maxAbsDiff(await floats(out), io.get('output')!.data as Float32Array) <= 1e-6);
  assert.equal(module.parameterCount, 8 * 5 + 5);
  assert.deepEqual(module.parameterNames.sort(), ['linear.bias', 'linear.weight']);
  assert.equal(module.device, 'cpu');
  module.dispose();
});

test('tuple and list outputs come back as arrays of tensors', async () => {
  const multi = await loadModule(runtimeFixture('multi.pt'));
  const io = await fixtureTensors('multi_io.safetensors');
  const out = await multi.forward(toTensor(io.get('a')!), toTensor(io.get('b')!));
  assert.ok(Array.isArray(out) && out.length === 2);
  assert.deepEqual(await floats(out[0]), io.get('out0')!.data);
  assert.deepEqual(await floats(out[1]), io.get('out1')!.data);

  const list = await loadModule(runtimeFixture('listout.pt'));
  const lio = await fixtureTensors('listout_io.safetensors');
  const lout = await list.forward(toTensor(lio.get('input')!));
  assert.ok(Array.isArray(lout) && lout.length === 3);
  for (let i = 0; i < 3; i++) assert.deepEqual(await floats(lout[i]), lio.get(`out${i}`)!.data);
});

test('train() and eval() switch the module mode (dropout)', async () => {
  const module = await loadModule(runtimeFixture('dropout.pt'));
  const x = Tensor.from(new Float32Array(1000).fill(1), [1000]);
  // Loaded modules start in eval mode: dropout is the identity.
  assert.deepEqual(Array.from(await floats(await module.forward(x))), Array.from(new Float32Array(1000).fill(1)));
  await module.train();
  const trained = await floats(await module.forward(x));
  const zeros = trained.filter((v) => v === 0).length;
  assert.ok(zeros > 300 && zeros < 700, `dropout zeroed ${zeros} of 1000`);
  await module.eval();
  assert.ok((await floats(await module.forward(x))).every((v) => v === 1));
});

test('bad module files reject with their codes and name the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'torchedit-'));
  await rejectsWithCode(loadModule(join(dir, 'missing.pt')), 'ERR_FILE_NOT_FOUND');
  await rejectsWithCode(loadModule(dir), 'ERR_FILE_NOT_FOUND');
  const text = join(dir, 'text.pt');
  writeFileSync(text, 'this is not a TorchScript archive\n');
  await assert.rejects(
    loadModule(text),
    (e: { code: string; message: string }) => e.code === 'ERR_MODULE_LOAD' && e.message.includes(text),
  );
  const truncated = join(dir, 'truncated.pt');
  const whole = readFileSync(runtimeFixture('affine.pt'));
  writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
  await rejectsWithCode(loadModule(truncated), 'ERR_MODULE_LOAD');
  const weights = join(dir, 'weights.safetensors');
  copyFileSync(runtimeFixture('affine_io.safetensors'), weights);
  await rejectsWithCode(loadModule(weights), 'ERR_MODULE_LOAD');
  await rejectsWithCode(loadModule(''), 'ERR_INVALID_OPTION');
  await rejectsWithCode(loadModule(runtimeFixture('affine.pt'), { device: 'tpu' as never }), 'ERR_DEVICE');
  await rejectsWithCode(loadModule(runtimeFixture('affine.pt'), { device: 'cuda' }), 'ERR_DEVICE_UNAVAILABLE');
});

test('bad forward calls reject with their codes and leave the module usable', async () => {
  const module = await loadModule(runtimeFixture('affine.pt'));
  const good = Tensor.randn([2, 8], { seed: 3 });
  await rejectsWithCode(module.forward(good, good), 'ERR_FORWARD'); // too many arguments
  await rejectsWithCode(module.forward(), 'ERR_FORWARD'); // too few
  await rejectsWithCode(module.forward(Tensor.randn([2, 7], { seed: 3 })), 'ERR_FORWARD'); // wrong shape
  await rejectsWithCode(module.forward(Tensor.zeros([2, 8], { dtype: 'int64' })), 'ERR_FORWARD'); // wrong dtype
  await rejectsWithCode(module.forward({ shape: [2, 8] } as never), 'ERR_INVALID_HANDLE');
  await rejectsWithCode(module.forward(module as never), 'ERR_INVALID_HANDLE');
  const gone = Tensor.zeros([2, 8]);
  gone.dispose();
  await rejectsWithCode(module.forward(gone), 'ERR_DISPOSED');
  assert.ok((await module.forward(good)) instanceof Tensor);
  module.dispose();
  await rejectsWithCode(module.forward(good), 'ERR_DISPOSED');
  await rejectsWithCode(() => module.parameterCount, 'ERR_DISPOSED');
});

test('native errors carry the caller stack, not a C++ backtrace', async () => {
  const error = await loadModule('/nonexistent/model.pt').catch((e: Error) => e);
  assert.ok(error instanceof Error);
  assert.match(error.stack ?? '', /module\.test\.js/);
  assert.doesNotMatch(error.message, /Exception raised from|frame #/);
  assert.equal(Module.name, 'Module');
});
