// The fused attention kernel (native/core/kernels/fused_attention.cc) against torch's
// softmax(q·kᵀ·s)·v composed in float64, on every SIMD path this CPU runs (the scalar one forced
// too), float32 and bfloat16, the head widths of SD-family UNets and awkward sizes. Timings are
// in bench/attention.ts, never here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tensor, runtimeInfo } from '../../lib/index.js';
import { native } from '../../lib/binding.js';
import { relativeMaxDiff } from '../helpers.js';

const paths = runtimeInfo().attention?.available ?? ['scalar'];

interface Case {
  lead: number[];
  n: number;
  m: number;
  d: number;
  dv?: number;
}

// Head widths 8, 40, 64, 80, 160; sequence lengths 1, 7, 77, 1024, 4096; odd sizes; batch × heads > 1.
// The two big ones (4096 queries or keys) once each: the suite runs on a 2-core CI.
const cases: Case[] = [
  { lead: [3], n: 1, m: 1, d: 8 },
  { lead: [2, 3], n: 7, m: 77, d: 40 },
  { lead: [4], n: 77, m: 7, d: 64 },
  { lead: [2], n: 130, m: 77, d: 80 },
  { lead: [1], n: 33, m: 1024, d: 160 },
  { lead: [5], n: 129, m: 513, d: 8, dv: 24 },
  // Narrow heads take AVX-512's register kernels: several key tiles, row and lane tails.
  { lead: [3], n: 70, m: 600, d: 16 },
  { lead: [2], n: 5, m: 33, d: 13, dv: 7 },
  { lead: [2], n: 1024, m: 1024, d: 40 },
];
const big: Case[] = [
  { lead: [2], n: 4096, m: 77, d: 40 },
  { lead: [1], n: 67, m: 4096, d: 64 },
];

function inputs(c: Case, dtype: 'float32' | 'bfloat16', seed: number) {
  const dv = c.dv ?? c.d;
  // Scores of a few units, as in trained attention: softmax is neither uniform nor one-hot.
  const q = Tensor.randn([...c.lead, c.n, c.d], { seed, dtype: 'float32' });
  const kt = Tensor.randn([...c.lead, c.d, c.m], { seed: seed + 1, dtype: 'float32' });
  const v = Tensor.randn([...c.lead, c.m, dv], { seed: seed + 2, dtype: 'float32' });
  if (dtype === 'float32') return { q, kt, v };
  return { q: q.to({ dtype }), kt: kt.to({ dtype }), v: v.to({ dtype }) };
}

async function check(c: Case, dtype: 'float32' | 'bfloat16', simd: string, seed: number): Promise<void> {
  const t = await inputs(c, dtype, seed);
  const q = await t.q,
    kt = await t.kt,
    v = await t.v;
  const scale = 2 / Math.sqrt(c.d);
  const [fusedHandle, referenceHandle] = native().testing.attention(q.native, kt.native, v.native, scale, simd);
  const fused = Tensor.fromNative(fusedHandle);
  const reference = Tensor.fromNative(referenceHandle);
  assert.deepEqual(fused.shape, [...c.lead, c.n, c.dv ?? c.d]);
  assert.equal(fused.dtype, dtype);
  const ours = dtype === 'float32' ? await fused.data() : await (await fused.to({ dtype: 'float32' })).data();
  const err = relativeMaxDiff(ours as Float32Array, (await reference.data()) as Float32Array);
  // float32: the tiles' sums in another order; bfloat16: the output's 8-bit mantissa (2^-9 relative).
  const tolerance = dtype === 'float32' ? 2e-5 : 8e-3;
  assert.ok(err <= tolerance, `${simd} ${dtype} ${JSON.stringify(c)}: relative error ${err} > ${tolerance}`);
  for (const x of [q, kt, v, fused, reference]) x.dispose();
}

for (const simd of paths) {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    test(`fused attention equals softmax(q·kᵀ·s)·v: ${simd}, ${dtype}`, async () => {
      for (const [i, c] of cases.entries()) await check(c, dtype, simd, 10 + 3 * i);
    });
  }
}

test(`fused attention at 4096 queries or keys (${paths[0]}, float32 and bfloat16)`, async () => {
  for (const c of big) {
    await check(c, 'float32', paths[0], 101);
    await check(c, 'bfloat16', paths[0], 201);
  }
});

test('the scalar path can be forced, an unknown one is refused, and auto restores the best', () => {
  const testing = native().testing;
  assert.equal(testing.setAttentionSimd('scalar'), 'scalar');
  assert.equal(runtimeInfo().attention?.simd, 'scalar');
  assert.throws(
    () => testing.setAttentionSimd('neon'),
    (e: { code?: string }) => e.code === 'ERR_INVALID_ARGUMENT',
  );
  assert.equal(testing.setAttentionSimd('auto'), paths[0]);
});
