/**
 * Vocabulary honesty: the shipped shapes-64 declares the token ids its text encoder was trained on
 * (model.json `textEncoder.knownTokenIds`); a prompt with other words gets one TorchEditWarning per
 * distinct prompt text, naming those words. Bundles without the field (Stable Diffusion, the test
 * bundles) never warn.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configure, loadModel, TorchEditWarning, type StableDiffusionModel } from '../../lib/index.js';
import { rejectsWithCode, runPython, testBundle } from '../helpers.js';

/** The shipped model, with every warning it gives collected in `warnings`. */
let model: StableDiffusionModel;
let warnings: TorchEditWarning[] = [];
/** model.json's known ids. */
let known: Set<number>;

/** The words of `words` whose ids (tokenized alone) are not all known: what a warning must name. */
function unknownOf(words: string[]): string[] {
  return words.filter((w) => model.tokenizer.tokenize(w).some((id) => !known.has(id)));
}

/** Encodes the prompts and returns the warnings that gave. */
async function warningsFor(prompts: string | string[]): Promise<TorchEditWarning[]> {
  warnings = [];
  (await model.encodePrompt(prompts)).dispose();
  return warnings;
}

const floats = async (t: { data(): Promise<unknown>; dispose(): void }) => {
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
};

describe('a model that declares its known token ids (the shipped shapes-64)', () => {
  before(async () => {
    configure({ threads: 1 });
    model = await loadModel(undefined, { onWarning: (w) => warnings.push(w) });
    known = new Set(model.config.textEncoder.knownTokenIds);
  });
  after(() => model.dispose());

  test("model.json's knownTokenIds are exactly the ids with their own row in text_encoder.pt's remap buffer", async () => {
    const printed = runPython('scripts/known_token_ids.py', [model.path]);
    const ids = [...printed.matchAll(/(\d+)=/g)].map((m) => Number(m[1]));
    assert.equal(ids.length, Number(/^(\d+) known ids/.exec(printed)?.[1]), printed);
    assert.deepEqual(model.config.textEncoder.knownTokenIds, ids);
    const { bosTokenId, eosTokenId, padTokenId } = model.config.textEncoder;
    for (const id of [bosTokenId, eosTokenId, padTokenId]) assert.ok(known.has(id), `special id ${id}`);
    // What the declaration promises: two unknown words read the same (one shared row), a known one does not.
    assert.deepEqual(unknownOf(['violet', 'orange', 'red']), ['violet', 'orange']);
    assert.notDeepEqual(model.tokenizer.encode('a violet triangle'), model.tokenizer.encode('a orange triangle'));
    const [violet, orange, red] = [
      await floats(await model.encodePrompt('a violet triangle')),
      await floats(await model.encodePrompt('a orange triangle')),
      await floats(await model.encodePrompt('a red triangle')),
    ];
    assert.deepEqual(violet, orange);
    assert.notDeepEqual(violet, red);
  });

  test('a prompt with unknown words warns once, naming exactly those words', async () => {
    assert.deepEqual(unknownOf(['a', 'purple', 'circle']), ['purple']);
    assert.deepEqual(unknownOf(['a', 'red', 'circle']), []);

    const [first] = await warningsFor('a purple circle');
    assert.ok(first instanceof TorchEditWarning && first instanceof Error);
    assert.equal(first.name, 'TorchEditWarning');
    assert.equal(first.code, 'TORCHEDIT_UNKNOWN_WORDS');
    assert.equal(first.model, 'shapes-64');
    assert.equal(first.prompt, 'a purple circle');
    assert.deepEqual(first.words, ['purple']);
    assert.equal(
      first.message,
      'The model shapes-64 was not trained on the word "purple" in "a purple circle": it does not know what it means',
    );
    assert.deepEqual(await warningsFor('a purple circle'), [], 'the same prompt again: no second warning');
    assert.deepEqual(await warningsFor(['a purple circle', 'a red circle']), []);
    assert.deepEqual(await warningsFor('a red circle on the left'), [], 'only known words');
    assert.deepEqual(await warningsFor(''), []);

    // Several unknown words, each named once and as typed; known punctuation is not named.
    const prompt = "A PURPLE ring, it's Purple!";
    const expected = unknownOf(['A', 'PURPLE', 'ring', ',', 'it', "'s", '!']);
    assert.ok(expected.includes('PURPLE') && expected.includes('ring') && !expected.includes(','), expected.join(' '));
    const [several] = await warningsFor([prompt, prompt]);
    assert.deepEqual(several.words, expected);
    assert.ok(
      several.message.startsWith(
        `The model shapes-64 was not trained on the words ${expected.map((w) => JSON.stringify(w)).join(', ')} in `,
      ),
    );
    assert.ok(several.message.endsWith('it does not know what they mean'), several.message);

    // A distinct prompt text is a new prompt, even with the same words.
    assert.deepEqual((await warningsFor('a  purple circle'))[0]?.words, ['purple']);
  });

  test('words past maxLength − 2 tokens, which the text encoder never sees, are not named', async () => {
    const { maxLength } = model.config.textEncoder;
    const prompt = `${'a red circle '.repeat(Math.ceil(maxLength / 3))}purple`;
    assert.ok(model.tokenizer.tokenize(prompt).length > maxLength);
    assert.deepEqual(await warningsFor(prompt), []);
  });

  test('every prompt of every pipeline is checked: text-to-image and negative, source, target, concepts, Imagic target', async () => {
    const concept = 'make it a square';
    const conceptWords = unknownOf(concept.split(' '));
    assert.ok(conceptWords.length > 0 && !conceptWords.includes('square'), conceptWords.join(' '));

    warnings = [];
    using generated = await model.generate('a tiny circle', { steps: 2, seed: 1, negativePrompt: 'blurry' });
    assert.deepEqual(
      warnings.map((w) => [w.prompt, w.words]),
      [
        ['a tiny circle', unknownOf(['tiny'])],
        ['blurry', ['blurry']],
      ],
    );

    warnings = [];
    using image = await model.decodeLatents(generated.latents);
    using inversion = await model.invert(image, { steps: 4, seed: 1, sourcePrompt: 'a glowing circle' });
    using edited = await inversion.edit({
      targetPrompt: 'a purple square',
      concepts: [{ prompt: concept }, { prompt: 'red', remove: true }],
    });
    assert.ok(edited.latents);
    assert.deepEqual(
      warnings.map((w) => [w.prompt, w.words]),
      [
        ['a glowing circle', ['glowing']],
        ['a purple square', ['purple']],
        [concept, conceptWords],
      ],
      'a purple square is a new prompt text; "red" is known',
    );

    warnings = [];
    using imagic = await model.imagic(image, 'a shiny triangle', { embedding: { steps: 1 }, finetune: { steps: 1 }, seed: 1 });
    assert.ok(imagic);
    assert.deepEqual(
      warnings.map((w) => [w.prompt, w.words]),
      [['a shiny triangle', ['shiny']]],
    );
  });

  test('a warning thrown from onWarning rejects the call, and comes again next time', async () => {
    const strict = await loadModel(undefined, {
      onWarning: (w) => {
        throw w;
      },
    });
    try {
      await assert.rejects(strict.encodePrompt('a purple circle'), (e: TorchEditWarning) => e.code === 'TORCHEDIT_UNKNOWN_WORDS');
      await assert.rejects(strict.generate('a purple circle', { steps: 1 }), TorchEditWarning);
      (await strict.encodePrompt('a red circle')).dispose();
    } finally {
      strict.dispose();
    }
  });

  test('without onWarning, the warning goes to process.emitWarning', async () => {
    const plain = await loadModel();
    const emitted: Error[] = [];
    const listener = (w: Error) => emitted.push(w);
    process.on('warning', listener);
    try {
      (await plain.encodePrompt('a teal circle')).dispose();
      (await plain.encodePrompt('a teal circle')).dispose();
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(emitted.length, 1);
      assert.ok(emitted[0] instanceof TorchEditWarning);
      assert.equal((emitted[0] as TorchEditWarning).code, 'TORCHEDIT_UNKNOWN_WORDS');
      assert.deepEqual((emitted[0] as TorchEditWarning).words, ['teal']);
    } finally {
      process.off('warning', listener);
      plain.dispose();
    }
  });
});

test('a bundle without knownTokenIds never warns', async () => {
  const got: TorchEditWarning[] = [];
  using tiny = await loadModel(testBundle(), { onWarning: (w) => got.push(w) });
  assert.equal(tiny.config.textEncoder.knownTokenIds, undefined);
  for (const prompt of ['a purple circle', 'zxqv blorf', 'make it a square']) (await tiny.encodePrompt(prompt)).dispose();
  using result = await tiny.generate('a purple circle', { steps: 1, negativePrompt: 'blurry' });
  assert.equal(result.images.length, 1);
  assert.deepEqual(got, []);
});

test('onWarning must be a function', async () => {
  // biome-ignore lint/suspicious/noExplicitAny: a wrong type on purpose
  await rejectsWithCode(loadModel(testBundle(), { onWarning: 'print' as any }), 'ERR_INVALID_OPTION');
});
