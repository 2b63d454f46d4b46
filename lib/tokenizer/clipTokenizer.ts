/**
 * CLIP's byte-level BPE tokenizer, read from a bundle's `tokenizer/` folder (vocab.json, merges.txt).
 *
 * It reproduces OpenAI CLIP's `clip/simple_tokenizer.py` + `clip.tokenize`, checked id for id
 * against test/reference/clip_tokenizer.py. transformers' CLIPTokenizer(Fast) gives the same ids on
 * ordinary prompts; where the references disagree we follow OpenAI, except for ftfy:
 * - ftfy.fix_text (OpenAI; the slow HF tokenizer only when ftfy is installed) is a Python library
 *   with no JS port. We keep only its NFC normalisation, which CLIPTokenizerFast also does, so
 *   mojibake, curly quotes (it’s), full-width letters and ligatures stay as typed, as in the fast one.
 * - HTML entities are decoded twice, as OpenAI does (`html.unescape(html.unescape(text))`);
 *   CLIPTokenizerFast keeps "&amp;" as the three tokens "&", "amp", ";".
 * - A CJK run is one word, as in OpenAI and CLIPTokenizerFast (the slow HF tokenizer without ftfy
 *   splits every CJK character).
 * - "<|startoftext|>" / "<|endoftext|>" typed in a prompt become the BOS / EOS ids, in any case.
 * Unicode tables are Node's (ICU), so characters newer than the reference's Unicode may differ.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeHTML } from 'entities';
import { TorchEditError } from '../errors.js';

export interface ClipTokenizerOptions {
  /** Length of every `encode()` result, BOS and EOS included (77 for SD1.x/2.x). */
  maxLength: number;
  bosTokenId: number;
  eosTokenId: number;
  /** Fills the rest of the sequence: 49407 (EOS) for SD1.x bundles, 0 for SD2.x. */
  padTokenId: number;
}

/** One word of a prompt and its BPE ids (the last one ends in `</w>`); see {@link ClipTokenizer.words}. */
export interface TokenizedWord {
  /** The word as typed: its case kept, after the tokenizer's cleaning (HTML entities decoded, NFC). */
  text: string;
  ids: readonly number[];
}

const START_OF_TEXT = '<|startoftext|>';
const END_OF_TEXT = '<|endoftext|>';
const END_OF_WORD = '</w>';
/** CLIP keeps the first 49152 - 256 - 2 merges: its 49408 ids = 2 × 256 byte symbols (± </w>) + merges + 2 specials. */
const MAX_MERGES = 49152 - 256 - 2;
/** Bounds the per-word BPE cache; prompts reuse few words, so this is only a guard for long-lived processes. */
const CACHE_LIMIT = 20_000;
/**
 * BPE takes time quadratic in a word's length (each merge rescans the word): a 5000-letter "word"
 * took 1 s and 100 000 letters minutes, so a hostile prompt could hold the event loop. Longer
 * words are split into pieces of this many code points, each BPE'd alone (only the last ends in
 * `</w>`). No vocabulary entry is near this long, so real prompts are unaffected; the reference
 * tokenizers give other ids for such words (after the same wait).
 */
const MAX_WORD_CODE_POINTS = 128;

/**
 * GPT-2/CLIP byte → character table: printable Latin-1 bytes stand for themselves, the other 68
 * (controls, space, NBSP, soft hyphen) move to U+0100.. so no BPE symbol is whitespace.
 */
const BYTE_TO_CHAR: readonly string[] = (() => {
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : next++);
  }
  return table;
})();

/**
 * OpenAI's pattern, which it compiles with `regex.IGNORECASE` and applies to lower-cased text. Since
 * the text is already lower case we drop the flag, and spell out the two things it still changed:
 * "ſ" (U+017F) case-folds to "s", and U+0345 (combining ypogegrammeni, folds to "ι") matches neither
 * the letter class nor the negated class, so the reference silently drops it.
 * \s is Unicode White_Space in the `regex` module; JS's \s differs (adds U+FEFF, lacks U+0085).
 */
// biome-ignore lint/suspicious/noMisleadingCharacterClass: U+0345 stands alone in the class on purpose (see above)
const WORD_PATTERN = /<\|[sſ]tartoftext\|>|<\|endoftext\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}\u0345]+/gu;
/** Python's str.strip() also strips U+001C..U+001F (they count as isspace), which \s does not match. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: U+001C..U+001F are what Python's strip() removes
const STRIP_PATTERN = /^[\p{White_Space}\x1c-\x1f]+|[\p{White_Space}\x1c-\x1f]+$/gu;
const WHITESPACE_RUN = /\p{White_Space}+/gu;
/** Python's html.unescape pattern; `u` so the 32-character limit counts code points as Python does. */
const CHAR_REF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

export class ClipTokenizer {
  readonly maxLength: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  /** One more than the largest id in vocab.json: 49408 for CLIP. */
  readonly vocabSize: number;
  readonly #vocab: Map<string, number>;
  /** Merge rank by "left right" (BPE symbols never contain a space). */
  readonly #ranks: Map<string, number>;
  readonly #cache = new Map<string, readonly number[]>();
  readonly #utf8 = new TextEncoder();

  private constructor(vocab: Map<string, number>, ranks: Map<string, number>, options: ClipTokenizerOptions) {
    this.#vocab = vocab;
    this.#ranks = ranks;
    this.maxLength = options.maxLength;
    this.bosTokenId = options.bosTokenId;
    this.eosTokenId = options.eosTokenId;
    this.padTokenId = options.padTokenId;
    let largest = -1;
    for (const id of vocab.values()) largest = Math.max(largest, id);
    this.vocabSize = largest + 1;
  }

  /**
   * Reads `vocab.json` and `merges.txt` from `dir` (a bundle's `tokenizer/` folder). Rejects with
   * ERR_MODEL_LOAD naming the file when one is missing or malformed, and with ERR_INVALID_OPTION
   * for a bad option.
   */
  static async fromFolder(dir: string, options: ClipTokenizerOptions): Promise<ClipTokenizer> {
    checkInteger('maxLength', options.maxLength, 2);
    checkInteger('bosTokenId', options.bosTokenId, 0);
    checkInteger('eosTokenId', options.eosTokenId, 0);
    checkInteger('padTokenId', options.padTokenId, 0);
    const vocabPath = join(dir, 'vocab.json');
    const mergesPath = join(dir, 'merges.txt');
    const [vocabText, mergesText] = await Promise.all([readText(vocabPath), readText(mergesPath)]);
    const vocab = parseVocab(vocabText, vocabPath);
    const ranks = parseMerges(mergesText, mergesPath, vocab);
    return new ClipTokenizer(vocab, ranks, options);
  }

  /**
   * Ids for the text encoder: exactly `maxLength` of them, [BOS, tokens…, EOS, pad…]. Tokens past
   * `maxLength - 2` are dropped so EOS is always there (as clip.tokenize(truncate=True) and HF do).
   */
  encode(text: string): Int32Array {
    const tokens = this.#tokenize(text, this.maxLength - 2);
    const count = Math.min(tokens.length, this.maxLength - 2);
    const ids = new Int32Array(this.maxLength).fill(this.padTokenId);
    ids[0] = this.bosTokenId;
    for (let i = 0; i < count; i++) ids[i + 1] = tokens[i];
    ids[count + 1] = this.eosTokenId;
    return ids;
  }

  /** The BPE ids of `text`, without BOS/EOS, truncation or padding. */
  tokenize(text: string): number[] {
    return this.#tokenize(text, Infinity);
  }

  /**
   * The words of `text` with their BPE ids, in order: what `tokenize` returns, grouped so that each
   * word's last id is a token ending in `</w>` (or is BOS / EOS for a typed "<|startoftext|>" /
   * "<|endoftext|>"). Punctuation runs and the "'s" of "it's" are words of their own, as CLIP splits them.
   */
  words(text: string): TokenizedWord[] {
    const typed = normalize(text);
    const cleaned = typed.toLowerCase();
    // Lower-casing rarely changes the length ("İ" does); then the typed case cannot be lined up.
    const aligned = typed.length === cleaned.length;
    const words: TokenizedWord[] = [];
    for (const match of cleaned.matchAll(WORD_PATTERN)) {
      const word = match[0];
      const asTyped = aligned ? typed.slice(match.index, match.index + word.length) : word;
      const ids = word === START_OF_TEXT ? [this.bosTokenId] : word === END_OF_TEXT ? [this.eosTokenId] : [...this.#bpe(word)];
      words.push({ text: asTyped.toLowerCase() === word ? asTyped : word, ids });
    }
    return words;
  }

  /** Stops after the word that reaches `limit` ids: later words cannot change earlier ids. */
  #tokenize(text: string, limit: number): number[] {
    const ids: number[] = [];
    for (const [word] of clean(text).matchAll(WORD_PATTERN)) {
      if (ids.length >= limit) break;
      if (word === START_OF_TEXT) ids.push(this.bosTokenId);
      else if (word === END_OF_TEXT) ids.push(this.eosTokenId);
      else for (const id of this.#bpe(word, limit - ids.length)) ids.push(id);
    }
    return ids;
  }

  /** Byte-level BPE of one pre-tokenized word, as simple_tokenizer.bpe does it (very long words in pieces). */
  #bpe(word: string, limit = Infinity): readonly number[] {
    if (word.length <= MAX_WORD_CODE_POINTS) return this.#bpePiece(word, true);
    const points = Array.from(word);
    const ids: number[] = [];
    // Pieces are independent, so stopping once `limit` ids are there changes none of them.
    for (let at = 0; at < points.length && ids.length < limit; at += MAX_WORD_CODE_POINTS) {
      const end = at + MAX_WORD_CODE_POINTS >= points.length;
      for (const id of this.#bpePiece(points.slice(at, at + MAX_WORD_CODE_POINTS).join(''), end)) ids.push(id);
    }
    return ids;
  }

  /** BPE of a word, or of a piece of one (`end`: the piece that ends the word carries `</w>`). */
  #bpePiece(word: string, end: boolean): readonly number[] {
    // A middle piece has MAX code points, so with a NUL appended its key is longer than any whole word's.
    const key = end ? word : `${word}\u0000`;
    let ids = this.#cache.get(key);
    if (ids) return ids;

    // Each UTF-8 byte becomes one symbol; the last carries the end-of-word marker.
    // (A lone surrogate encodes as U+FFFD here; Python's reference raises on it.)
    const bytes = this.#utf8.encode(word);
    let symbols = Array.from(bytes, (b) => BYTE_TO_CHAR[b]);
    if (end) symbols[symbols.length - 1] += END_OF_WORD;

    // Repeatedly merge the adjacent pair with the lowest rank, everywhere it occurs (left to right).
    while (symbols.length > 1) {
      let best = Infinity;
      let at = -1;
      for (let i = 0; i < symbols.length - 1; i++) {
        const rank = this.#ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < best) [best, at] = [rank, i];
      }
      if (at < 0) break;
      const [first, second] = [symbols[at], symbols[at + 1]];
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (symbols[i] === first && symbols[i + 1] === second) {
          merged.push(first + second);
          i++;
        } else {
          merged.push(symbols[i]);
        }
      }
      symbols = merged;
    }

    // parseMerges checked that every byte symbol and every merge result is in the vocabulary.
    ids = symbols.map((symbol) => this.#vocab.get(symbol)!);
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(key, ids);
    return ids;
  }
}

/**
 * simple_tokenizer's basic_clean + whitespace_clean + lower(), in its order: ftfy (here only NFC),
 * html.unescape twice, strip, collapse whitespace runs to one space, lower-case.
 */
function clean(text: string): string {
  return normalize(text).toLowerCase();
}

/** clean() before lower-casing. */
function normalize(text: string): string {
  let s = text.normalize('NFC');
  if (s.includes('&')) s = htmlUnescape(htmlUnescape(s));
  return s.replace(STRIP_PATTERN, '').replace(WHITESPACE_RUN, ' ');
}

/**
 * Python's html.unescape. Named references (the WHATWG table, including the legacy ones that need
 * no ";", e.g. "&copy2024") come from `entities`, which agrees with Python on all of them; numeric
 * ones too, except that Python drops control and non-character code points that `entities` keeps.
 */
function htmlUnescape(s: string): string {
  return s.replace(CHAR_REF, (ref: string, body: string) => {
    if (body[0] === '#') {
      const hex = body[1] === 'x' || body[1] === 'X';
      const code = parseInt(body.slice(hex ? 2 : 1), hex ? 16 : 10);
      if (isDroppedCodePoint(code)) return '';
    }
    return decodeHTML(ref);
  });
}

/** Python's html._invalid_codepoints, less those its Windows-1252 table maps (0x80..0x9F). */
function isDroppedCodePoint(code: number): boolean {
  return (
    (code >= 0x01 && code <= 0x08) ||
    code === 0x0b ||
    (code >= 0x0e && code <= 0x1f) ||
    code === 0x7f ||
    (code >= 0xfdd0 && code <= 0xfdef) ||
    (code <= 0x10ffff && (code & 0xfffe) === 0xfffe)
  );
}

function checkInteger(name: string, value: unknown, min: number): void {
  if (!Number.isInteger(value) || (value as number) < min) {
    throw new TorchEditError(
      'ERR_INVALID_OPTION',
      `Expected integer >= ${min} for ${name} but received ${String(value)} of type ${typeof value}`,
    );
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    throw new TorchEditError('ERR_MODEL_LOAD', `Cannot read tokenizer file ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/** vocab.json: { "symbol": id, … }, and it must hold all 512 byte symbols (with and without </w>). */
function parseVocab(text: string, path: string): Map<string, number> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new TorchEditError('ERR_MODEL_LOAD', `Tokenizer file ${path} is not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new TorchEditError('ERR_MODEL_LOAD', `Tokenizer file ${path} must hold a JSON object of token → id`);
  }
  const entries = json as Record<string, unknown>;
  const vocab = new Map<string, number>();
  for (const token in entries) {
    const id = entries[token];
    if (!Number.isInteger(id) || (id as number) < 0) {
      const name = JSON.stringify(token);
      throw new TorchEditError('ERR_MODEL_LOAD', `Tokenizer file ${path}: the id of ${name} is not a non-negative integer`);
    }
    vocab.set(token, id as number);
  }
  for (const symbol of BYTE_TO_CHAR.flatMap((c) => [c, c + END_OF_WORD])) {
    if (!vocab.has(symbol)) {
      const missing = JSON.stringify(symbol);
      throw new TorchEditError(
        'ERR_MODEL_LOAD',
        `Tokenizer file ${path} lacks the byte symbol ${missing}: not a CLIP byte-level vocabulary`,
      );
    }
  }
  return vocab;
}

/**
 * merges.txt: a "#version" header line, then one "left right" pair per line, best first.
 * Only the first MAX_MERGES count, as in CLIP; each result must be in the vocabulary.
 */
function parseMerges(text: string, path: string, vocab: Map<string, number>): Map<string, number> {
  const lines = text.split('\n');
  const ranks = new Map<string, number>();
  let rank = 0;
  for (let n = lines[0]?.startsWith('#version') ? 1 : 0; n < lines.length && rank < MAX_MERGES; n++) {
    const line = lines[n].trim();
    if (line === '') continue;
    const pair = line.split(' ');
    if (pair.length !== 2 || !pair[0] || !pair[1]) {
      const found = JSON.stringify(line);
      throw new TorchEditError('ERR_MODEL_LOAD', `Tokenizer file ${path}, line ${n + 1}: expected "left right" but found ${found}`);
    }
    if (!vocab.has(pair[0] + pair[1])) {
      const result = JSON.stringify(pair[0] + pair[1]);
      throw new TorchEditError('ERR_MODEL_LOAD', `Tokenizer file ${path}, line ${n + 1}: merge result ${result} is not in vocab.json`);
    }
    ranks.set(line, rank++); // the key is "left right", as #bpe looks it up
  }
  if (ranks.size === 0) throw new TorchEditError('ERR_MODEL_LOAD', `Tokenizer file ${path} holds no merges`);
  return ranks;
}
