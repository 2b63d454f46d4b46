// Prompts made hostile (any code point, lone surrogates, NUL, controls, CLIP's special tokens, HTML
// entities, very long text): the tokenizer keeps its invariants in bounded time, and every call
// that takes a prompt ends in a value or a documented error.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { ClipTokenizer, loadModel, type StableDiffusionModel } from '../../lib/index.js';
import { repoRoot } from '../helpers.js';
import { hostileText } from './arbitraries.js';
import { budget } from './budget.js';
import { endsWell } from './outcome.js';

const options = { maxLength: 32, bosTokenId: 49406, eosTokenId: 49407, padTokenId: 49407 };
let tokenizer: ClipTokenizer;
let model: StableDiffusionModel;

before(async () => {
  tokenizer = await ClipTokenizer.fromFolder(join(repoRoot, 'models', 'shapes-64', 'tokenizer'), options);
  model = await loadModel(undefined, { onWarning: () => {} });
});
after(() => model?.dispose());

/** Runs `f` and checks that it took less than `ms` (sync code cannot be interrupted, only measured). */
function quick<T>(what: string, f: () => T, ms = 2000): T {
  const start = performance.now();
  const value = f();
  const took = performance.now() - start;
  assert.ok(took < ms, `${what} took ${took.toFixed(0)} ms`);
  return value;
}

test('any text tokenizes quickly into BOS, known ids and EOS; words() groups tokenize()', async () => {
  await fc.assert(
    fc.property(hostileText, (text) => {
      const ids = quick('encode', () => tokenizer.encode(text));
      assert.equal(ids.length, options.maxLength);
      assert.equal(ids[0], options.bosTokenId);
      assert.ok(ids.includes(options.eosTokenId));
      assert.ok(ids.every((id) => id >= 0 && id < tokenizer.vocabSize));
      const all = quick('tokenize', () => tokenizer.tokenize(text));
      const words = quick('words', () => tokenizer.words(text));
      assert.deepEqual(
        words.flatMap((w) => w.ids),
        all,
      );
    }),
    budget(300),
  );
});

test('any prompt generates, and any concept prompt edits, or is refused with a documented code', async () => {
  using inversion = await model.invert(join(repoRoot, 'examples', 'red-circle.png'), { steps: 2, seed: 0 });
  await fc.assert(
    fc.asyncProperty(hostileText, hostileText, async (prompt, concept) => {
      const generated = await endsWell(() => model.generate(prompt, { steps: 1, seed: 0, negativePrompt: concept }), []);
      if (generated.ok) generated.value.dispose();
      const edited = await endsWell(
        () => inversion.edit({ targetPrompt: prompt, concepts: [{ prompt: concept }], skip: 1 }),
        ['ERR_INVALID_OPTION'],
      );
      if (edited.ok) edited.value.dispose();
      else assert.equal(concept, '', edited.error.message); // only an empty concept is refused
    }),
    budget(40),
  );
});

test('regression: a 100 000-letter word tokenizes in linear time (BPE is quadratic per word)', () => {
  const word = Array.from({ length: 100_000 }, (_, i) => String.fromCharCode(97 + ((i * 7919) % 26))).join('');
  quick('encode', () => tokenizer.encode(word), 500);
  assert.equal(quick('tokenize', () => tokenizer.tokenize(word), 5000).length > 100, true);
});

test('regression: one call with more distinct prompts than the prompt cache holds', async () => {
  const prompts = Array.from({ length: 100 }, (_, i) => `a red circle ${i}`);
  using all = await model.encodePrompt(prompts);
  const { maxLength, hiddenSize } = model.config.textEncoder;
  assert.deepEqual(all.shape, [100, maxLength, hiddenSize]);
  using last = await model.encodePrompt(prompts[99]);
  const [a, b] = [(await all.data()) as Float32Array, (await last.data()) as Float32Array];
  assert.deepEqual(a.subarray(99 * maxLength * hiddenSize), b);
});
