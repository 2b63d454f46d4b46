import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClipTokenizer } from '../../lib/tokenizer/clipTokenizer.js';
import { defaultModelPath } from '../../lib/model/model.js';

// Compiled to dist/test/unit/, so the repo root is three levels up. The CLIP vocabulary is the
// repository's one copy, in the shipped default model's tokenizer folder.
const repoRoot = new URL('../../../', import.meta.url);
const vocabDir = join(defaultModelPath, 'tokenizer');
const oracle = fileURLToPath(new URL('test/reference/clip_tokenizer.py', repoRoot));

const SD1 = { maxLength: 77, bosTokenId: 49406, eosTokenId: 49407, padTokenId: 49407 };
const SD2 = { ...SD1, padTokenId: 0 };

/** Ids from the Python oracle (OpenAI simple_tokenizer); `maxLength` undefined means BPE ids only. */
function reference(prompts: string[], maxLength?: number, padId = 0): number[][] {
  const args = [oracle, '--vocab-dir', vocabDir];
  args.push(...(maxLength === undefined ? ['--no-pad'] : ['--max-length', String(maxLength), '--pad-id', String(padId)]));
  try {
    return JSON.parse(execFileSync('/usr/bin/python3', args, { input: JSON.stringify(prompts), encoding: 'utf8' }));
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '');
    const hint = stderr.includes("No module named 'regex'") ? ' (install it: apt-get install -y python3-regex)' : '';
    throw new Error(`The Python oracle failed${hint}: ${stderr || String(error)}`);
  }
}

const cases: Record<string, string[]> = {
  known: ['a photo of a cat'],
  empty: ['', ' ', '\t\n'],
  punctuation: [
    'Hello, world! (really?) [yes] {no} #tag @user ~50% off: a/b\\c;d',
    '!!!???...,,,',
    'e-mail: foo_bar@example.com',
    '$$$ €100 £5 ¥',
  ],
  apostrophes: [
    "it's",
    "don't",
    "we'll",
    "I'M HERE",
    "they're, you've, she'd",
    "rock 'n' roll",
    'it’s curly',
    "'s alone",
    "dogs' toys",
    "it'ſ (long s folds to s in the reference)",
  ],
  digits: ['1234 and 3.14', '1,000,000 cats in 2024', 'x²+y³ ½ ٣٤ Ⅻ'],
  'non-ASCII letters': [
    'café naïve Ærøskøbing',
    'Straße',
    'ΟΔΥΣΣΕΥΣ καλημέρα κόσμε',
    'Привет, мир! Ёлка',
    '猫の写真',
    '一只猫坐在桌子上',
    '한국어 문장',
    'cafe\u0301 decomposed',
    '\u0130stanbul',
  ],
  whitespace: [
    '  a   b  ',
    'a\tb\nc\r\nd',
    '\u00a0nbsp\u3000ideographic\u2003em',
    'x\u0085y\ufeffz\u200bw',
    '\x1ca\x1cb\x1c',
    'line\u2028sep',
  ],
  emoji: ['🐱 emoji 👍🏽 👨‍👩‍👧 🇫🇷 ❤️', 'a cat🐱on a mat', '🔥🔥🔥'],
  'upper case': ['A PHOTO OF A CAT', 'New York City', 'HeLLo WoRLD'],
  'html entities': [
    'Tom &amp; Jerry &lt;3 &#39;quoted&#39; &copy;2024 &amp;amp; &#x1F431;',
    'AT&T R&D fish&chips this&not that',
    'a&#1;b&#x7f;c&#xFFFE;d&#128;e&#0;f&#xD800;g',
  ],
  'special tokens in text': ['a <|endoftext|> b <|STARTOFTEXT|> c', '<|ſtartoftext|>'],
  'long (> 77 tokens)': ['a photo of a cat, '.repeat(20), 'supercalifragilisticexpialidocious '.repeat(12)],
};

/** A fixed pseudo-random mix of the classes above, to catch interactions the hand-picked cases miss. */
function fuzzPrompts(count: number): string[] {
  const pools = [
    'abcXYZ',
    '0123',
    ' \t\n\u00a0\u3000\x1c',
    "'’.,!?-&;#",
    'éÆßœ',
    'αΣς',
    'жЯ',
    '猫の',
    '\u0301\u0345\u200d\ufe0f',
    '🐱👍🏽🇫',
  ];
  let seed = 12345;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  return Array.from({ length: count }, () => {
    let s = '';
    for (let i = 1 + next(30); i > 0; i--) {
      const chars = [...pools[next(pools.length)]];
      s += chars[next(chars.length)];
    }
    return s;
  });
}
cases.fuzz = fuzzPrompts(300);

const allPrompts = Object.values(cases).flat();

test('known ids for "a photo of a cat"', async () => {
  const tokenizer = await ClipTokenizer.fromFolder(vocabDir, SD1);
  assert.deepEqual(tokenizer.tokenize('a photo of a cat'), [320, 1125, 539, 320, 2368]);
  const ids = tokenizer.encode('a photo of a cat');
  assert.ok(ids instanceof Int32Array);
  assert.equal(ids.length, 77);
  assert.deepEqual(Array.from(ids.subarray(0, 7)), [49406, 320, 1125, 539, 320, 2368, 49407]);
  assert.ok(ids.subarray(7).every((id) => id === 49407));
});

test('tokenize() matches the Python reference', async () => {
  const tokenizer = await ClipTokenizer.fromFolder(vocabDir, SD1);
  const expected = reference(allPrompts);
  let i = 0;
  for (const [name, prompts] of Object.entries(cases)) {
    for (const prompt of prompts) {
      assert.deepEqual(tokenizer.tokenize(prompt), expected[i++], `${name}: ${JSON.stringify(prompt)}`);
    }
  }
});

for (const [label, options] of [
  ['SD1 (77, pad 49407)', SD1],
  ['SD2 (77, pad 0)', SD2],
  ['maxLength 16, pad 0', { ...SD2, maxLength: 16 }],
] as const) {
  test(`encode() matches the Python reference: ${label}`, async () => {
    const tokenizer = await ClipTokenizer.fromFolder(vocabDir, options);
    const expected = reference(allPrompts, options.maxLength, options.padTokenId);
    allPrompts.forEach((prompt, i) => {
      assert.deepEqual(Array.from(tokenizer.encode(prompt)), expected[i], JSON.stringify(prompt));
    });
  });
}

test('the empty prompt is BOS, EOS, then padding', async () => {
  const sd1 = await ClipTokenizer.fromFolder(vocabDir, SD1);
  const sd2 = await ClipTokenizer.fromFolder(vocabDir, SD2);
  assert.deepEqual(sd1.tokenize(''), []);
  assert.deepEqual(Array.from(sd1.encode('')), [49406, ...Array(76).fill(49407)]);
  assert.deepEqual(Array.from(sd2.encode('  \n ')), [49406, 49407, ...Array(75).fill(0)]);
});

test('a prompt longer than maxLength keeps its first tokens and ends with EOS', async () => {
  const tokenizer = await ClipTokenizer.fromFolder(vocabDir, SD2);
  const prompt = 'a photo of a cat, '.repeat(20);
  const tokens = tokenizer.tokenize(prompt);
  assert.ok(tokens.length > 77);
  const ids = tokenizer.encode(prompt);
  assert.equal(ids.length, 77);
  assert.deepEqual(Array.from(ids), [49406, ...tokens.slice(0, 75), 49407]);
});

test('maxLength other than 77', async () => {
  const tokenizer = await ClipTokenizer.fromFolder(vocabDir, { ...SD1, maxLength: 8 });
  assert.deepEqual(Array.from(tokenizer.encode('a photo of a cat')), [49406, 320, 1125, 539, 320, 2368, 49407, 49407]);
  assert.deepEqual(Array.from(tokenizer.encode('a photo of a cat on a mat')), [49406, 320, 1125, 539, 320, 2368, 525, 49407]);
});

test('cached words give the same ids, and callers cannot corrupt the cache', async () => {
  const tokenizer = await ClipTokenizer.fromFolder(vocabDir, SD1);
  const first = tokenizer.tokenize('a photo of a cat');
  first.fill(0);
  assert.deepEqual(tokenizer.tokenize('a photo of a cat'), [320, 1125, 539, 320, 2368]);
});

test('words() groups tokenize() by word: each ends with its one `</w>` token; the typed case is kept', async () => {
  const tokenizer = await ClipTokenizer.fromFolder(vocabDir, SD1);
  assert.equal(tokenizer.vocabSize, 49408);
  const tokenOf = new Map(Object.entries(JSON.parse(await readFile(join(vocabDir, 'vocab.json'), 'utf8'))).map(([t, id]) => [id, t]));
  for (const prompt of allPrompts) {
    const words = tokenizer.words(prompt);
    assert.deepEqual(
      words.flatMap((w) => w.ids),
      tokenizer.tokenize(prompt),
      JSON.stringify(prompt),
    );
    for (const { text, ids } of words) {
      const ends = ids.map((id) => id === 49406 || id === 49407 || (tokenOf.get(id) as string).endsWith('</w>'));
      assert.deepEqual(ends, [...Array(ids.length - 1).fill(false), true], `${JSON.stringify(text)} in ${JSON.stringify(prompt)}`);
    }
  }
  const texts = (prompt: string) => tokenizer.words(prompt).map((w) => w.text);
  assert.deepEqual(texts("A PURPLE ring,  it's Purple!"), ['A', 'PURPLE', 'ring', ',', 'it', "'s", 'Purple', '!']);
  assert.deepEqual(texts('Tom &amp; Jerry'), ['Tom', '&', 'Jerry']);
  assert.deepEqual(texts('a <|endoftext|> b'), ['a', '<|endoftext|>', 'b']);
  assert.deepEqual(texts('\u0130stanbul'), ['i', '\u0307', 'stanbul'], 'lower case when lower-casing changes the length');
  assert.deepEqual(
    tokenizer.words('supercalifragilistic').map((w) => w.ids.length),
    [tokenizer.tokenize('supercalifragilistic').length],
  );
  assert.ok(tokenizer.tokenize('supercalifragilistic').length > 1, 'a word of several tokens');
});

test('a missing vocab file rejects with ERR_MODEL_LOAD naming the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'torchedit-tok-'));
  try {
    await writeFile(join(dir, 'merges.txt'), await readFile(join(vocabDir, 'merges.txt')));
    await assert.rejects(ClipTokenizer.fromFolder(dir, SD1), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'ERR_MODEL_LOAD');
      assert.match(error.message, /vocab\.json/);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('malformed tokenizer files reject with ERR_MODEL_LOAD naming the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'torchedit-tok-'));
  const vocab = await readFile(join(vocabDir, 'vocab.json'), 'utf8');
  const merges = await readFile(join(vocabDir, 'merges.txt'), 'utf8');
  const expectLoadError = (file: RegExp) => (error: Error & { code?: string }) => {
    assert.equal(error.code, 'ERR_MODEL_LOAD');
    assert.match(error.message, file);
    return true;
  };
  try {
    await writeFile(join(dir, 'merges.txt'), merges);
    await writeFile(join(dir, 'vocab.json'), vocab.slice(0, 1000));
    await assert.rejects(ClipTokenizer.fromFolder(dir, SD1), expectLoadError(/vocab\.json.*not valid JSON/));
    await writeFile(join(dir, 'vocab.json'), '{"a": 1}');
    await assert.rejects(ClipTokenizer.fromFolder(dir, SD1), expectLoadError(/vocab\.json/));

    await writeFile(join(dir, 'vocab.json'), vocab);
    await writeFile(join(dir, 'merges.txt'), '#version: 0.2\ni n\nthree symbols here\n');
    await assert.rejects(ClipTokenizer.fromFolder(dir, SD1), expectLoadError(/merges\.txt, line 3/));
    await writeFile(join(dir, 'merges.txt'), '#version: 0.2\nq z\n');
    await assert.rejects(ClipTokenizer.fromFolder(dir, SD1), expectLoadError(/merges\.txt.*"qz" is not in vocab\.json/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('invalid options reject with ERR_INVALID_OPTION', async () => {
  for (const bad of [
    { ...SD1, maxLength: 1 },
    { ...SD1, maxLength: 7.5 },
    { ...SD1, padTokenId: -1 },
  ]) {
    await assert.rejects(ClipTokenizer.fromFolder(vocabDir, bad), { code: 'ERR_INVALID_OPTION' });
  }
});
