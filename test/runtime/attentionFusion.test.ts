// The load-time graph pass (native/core/models/attention_fusion.cc): each attention form it
// recognises is fused with the same outputs, sites whose probabilities have another use (format-2
// maps) and modules without attention are left alone, and the fused clone shares the weights.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Tensor, configure, loadModule, runtimeInfo, type ModuleOutput } from '../../lib/index.js';
import { native } from '../../lib/binding.js';
import { fixturesDir, relativeMaxDiff, runPython } from '../helpers.js';

const dir = join(fixturesDir, 'attention-forms');
runPython('test/reference/attention_forms.py', [dir]);
const forms = JSON.parse(readFileSync(join(dir, 'forms.json'), 'utf8')) as Record<string, number>;

after(() => configure({ fusedAttention: true }));

async function outputs(out: ModuleOutput): Promise<Float32Array[]> {
  const list = Array.isArray(out) ? out : [out];
  return Promise.all(list.map(async (t) => (await (t as Tensor).data()) as Float32Array));
}

for (const [name, sites] of Object.entries(forms)) {
  test(`attention form '${name}': ${sites} site(s) fused, outputs unchanged`, async () => {
    const x = Tensor.randn([2, 24, 32], { seed: 1 });
    const ctx = Tensor.randn([2, 7, 16], { seed: 2 });
    configure({ fusedAttention: false });
    const plain = await loadModule(join(dir, `${name}.pt`));
    assert.equal(plain.fusedAttentionSites, 0);
    const expected = await outputs(await plain.forward(x, ctx));
    configure({ fusedAttention: true });
    const fused = await loadModule(join(dir, `${name}.pt`));
    assert.equal(fused.fusedAttentionSites, sites);
    const got = await outputs(await fused.forward(x, ctx));
    assert.equal(got.length, expected.length);
    for (let i = 0; i < got.length; i++) {
      const err = relativeMaxDiff(got[i], expected[i]);
      assert.ok(err <= 1e-5, `output ${i}: relative difference ${err}`);
    }
    const [shared, total] = native().testing.fusedSharesParameters(fused.native);
    assert.equal(shared, total, 'the fused clone shares every parameter');
    if (sites > 0) assert.equal(total, plain.parameterNames.length);
    // Turned off after load, the same module runs its own graph again.
    configure({ fusedAttention: false });
    const off = await outputs(await fused.forward(x, ctx));
    for (let i = 0; i < off.length; i++) assert.deepEqual(off[i], expected[i]);
    configure({ fusedAttention: true });
    for (const m of [plain, fused]) m.dispose();
    x.dispose();
    ctx.dispose();
  });
}

test('runtimeInfo reports the fused attention setting', () => {
  const info = runtimeInfo().attention;
  assert.ok(info);
  assert.equal(info.fused, true);
  assert.ok(info.available.includes('scalar'));
  assert.equal(info.simd, info.available[0]);
  configure({ fusedAttention: false });
  assert.equal(runtimeInfo().attention?.fused, false);
  configure({ fusedAttention: true });
  assert.throws(() => configure({ fusedAttention: 'yes' as unknown as boolean }), /fusedAttention/);
});
