import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tensor, memory, type DType } from '../../lib/index.js';
import { toTensor } from '../../lib/io/safetensors.js';
import { fixtureTensors, rejectsWithCode } from '../helpers.js';

test('every dtype round-trips through a tensor bit for bit', async () => {
  const cases: Array<[DType, ArrayLike<number | bigint> & { length: number }]> = [
    ['float32', new Float32Array([1.5, -2.25, 3e38, Number.NaN, -0, 1e-45])],
    ['float64', new Float64Array([Math.PI, -1e308, 5e-324, Number.POSITIVE_INFINITY])],
    ['float16', new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001])],
    ['bfloat16', new Uint16Array([0x3f80, 0xc040, 0x7f7f, 0x0001])],
    ['int8', new Int8Array([-128, 0, 127])],
    ['int16', new Int16Array([-32768, 1, 32767])],
    ['int32', new Int32Array([-2147483648, 7, 2147483647])],
    ['int64', new BigInt64Array([-(2n ** 63n), 0n, 2n ** 63n - 1n, 2n ** 53n + 1n])],
    ['uint8', new Uint8Array([0, 128, 255])],
    ['bool', new Uint8Array([0, 1, 1, 0])],
  ];
  for (const [dtype, values] of cases) {
    const t = Tensor.from(values as never, [values.length], { dtype });
    assert.equal(t.dtype, dtype);
    assert.deepEqual(t.shape, [values.length]);
    assert.equal(t.device, 'cpu');
    const back = await t.data();
    assert.equal(back.constructor, values.constructor, dtype);
    assert.deepEqual(Array.from(back as ArrayLike<unknown>), Array.from(values as ArrayLike<unknown>), dtype);
    t.dispose();
  }
});

test('tensors written by Python torch read back with the same values and dtypes', async () => {
  const tensors = await fixtureTensors('dtypes.safetensors');
  assert.equal(tensors.size, 7);
  for (const [name, raw] of tensors) {
    const t = toTensor(raw);
    assert.equal(t.dtype, name);
    assert.deepEqual(t.shape, raw.shape);
    assert.deepEqual(Array.from((await t.data()) as ArrayLike<unknown>), Array.from(raw.data as ArrayLike<unknown>));
    t.dispose();
  }
});

test('to() converts dtype and keeps the original', async () => {
  const t = Tensor.from(new Float32Array([1.25, -3.5, 1000.5]), [3]);
  const f64 = await t.to('float64');
  assert.deepEqual(Array.from((await f64.data()) as Float64Array), [1.25, -3.5, 1000.5]);
  const i32 = await t.to({ dtype: 'int32' });
  assert.deepEqual(Array.from((await i32.data()) as Int32Array), [1, -3, 1000]);
  const half = await t.to('float16');
  assert.deepEqual(Array.from((await half.data()) as Uint16Array), [0x3d00, 0xc300, 0x63d1]);
  const cpu = await t.to('cpu');
  assert.deepEqual(Array.from((await cpu.data()) as Float32Array), [1.25, -3.5, 1000.5]);
  assert.equal(t.dtype, 'float32');
  for (const x of [t, f64, i32, half, cpu]) x.dispose();
});

test('zeros and seeded randn: randn equals torch.manual_seed + torch.randn bit for bit', async () => {
  const z = Tensor.zeros([2, 3], { dtype: 'int64' });
  assert.deepEqual(Array.from((await z.data()) as BigInt64Array), [0n, 0n, 0n, 0n, 0n, 0n]);
  z.dispose();
  const expected = await fixtureTensors('randn.safetensors');
  assert.equal(expected.size, 9);
  for (const [name, raw] of expected) {
    const seed = Number(/^seed(\d+)_/.exec(name)![1]);
    const t = Tensor.randn(raw.shape, { seed });
    assert.deepEqual(await t.data(), raw.data, name);
    t.dispose();
  }
  const a = Tensor.randn([64], { seed: 1 });
  const b = Tensor.randn([64], { seed: 2 });
  assert.notDeepEqual(await a.data(), await b.data());
  a.dispose();
  b.dispose();
});

test('bad shapes, dtypes and data reject with their codes', async () => {
  await rejectsWithCode(() => Tensor.from(new Float32Array(6), [2, 2]), 'ERR_SHAPE');
  await rejectsWithCode(() => Tensor.zeros([2, -1]), 'ERR_SHAPE');
  await rejectsWithCode(() => Tensor.zeros([1.5]), 'ERR_SHAPE');
  await rejectsWithCode(() => Tensor.zeros('3' as never), 'ERR_SHAPE');
  await rejectsWithCode(() => Tensor.zeros([1e6, 1e6, 1e6]), 'ERR_OUT_OF_MEMORY');
  await rejectsWithCode(() => Tensor.randn([2 ** 40], { seed: 0 }), 'ERR_OUT_OF_MEMORY');
  await rejectsWithCode(() => Tensor.zeros([2], { dtype: 'complex64' as never }), 'ERR_DTYPE');
  await rejectsWithCode(() => Tensor.from(new Float32Array(2), [2], { dtype: 'int32' }), 'ERR_DTYPE');
  await rejectsWithCode(() => Tensor.from(new Uint16Array(2), [2]), 'ERR_DTYPE');
  await rejectsWithCode(() => Tensor.from([1, 2] as never, [2]), 'ERR_DTYPE');
  await rejectsWithCode(() => Tensor.randn([2], { seed: 0, dtype: 'int32' }), 'ERR_DTYPE');
  await rejectsWithCode(() => Tensor.randn([2], { seed: -1 }), 'ERR_INVALID_OPTION');
});

test('a disposed tensor rejects every use with ERR_DISPOSED; dispose twice is harmless', async () => {
  const t = Tensor.zeros([4]);
  t.dispose();
  t.dispose();
  assert.equal(t.disposed, true);
  await rejectsWithCode(() => t.shape, 'ERR_DISPOSED');
  await rejectsWithCode(t.data(), 'ERR_DISPOSED');
  await rejectsWithCode(t.to('float64'), 'ERR_DISPOSED');
  {
    using scoped = Tensor.zeros([2]);
    assert.equal(scoped.disposed, false);
  }
});

test('1000 create/dispose cycles leave no live handles or bytes behind', async () => {
  const before = memory();
  for (let i = 0; i < 1000; i++) {
    const t = Tensor.randn([16, 16], { seed: i });
    const u = await t.to('float64');
    t.dispose();
    u.dispose();
  }
  const after = memory();
  assert.equal(after.liveTensors, before.liveTensors);
  assert.equal(after.tensorBytes, before.tensorBytes);
  const t = Tensor.zeros([10, 10]);
  assert.equal(memory().liveTensors, before.liveTensors + 1);
  assert.equal(memory().tensorBytes, before.tensorBytes + 400);
  t.dispose();
});
