/**
 * Vocabulary honesty: a bundle may declare the token ids its text encoder was trained on
 * (model.json `textEncoder.knownTokenIds`, docs/bundle-format.md). The words of a prompt with
 * other ids mean nothing to that model, and the warning made here names them.
 */
import type { ClipTokenizer } from '../tokenizer/clipTokenizer.js';
import { TorchEditWarning } from '../warnings.js';

/** Prompts longer than this are shortened in the warning's message (the warning's `prompt` keeps all of it). */
const SHOWN_PROMPT_LENGTH = 80;

/**
 * The words of `prompt` that have an id outside `known`, as typed, each once, in order. Only the
 * ids the text encoder sees count: the first maxLength − 2 (the tokenizer drops the rest).
 */
export function unknownWords(tokenizer: ClipTokenizer, prompt: string, known: ReadonlySet<number>): string[] {
  let room = tokenizer.maxLength - 2;
  const found = new Map<string, string>(); // lower case → as first typed
  for (const word of tokenizer.words(prompt)) {
    if (room <= 0) break;
    const seen = word.ids.slice(0, room);
    room -= word.ids.length;
    const key = word.text.toLowerCase();
    if (!found.has(key) && seen.some((id) => !known.has(id))) found.set(key, word.text);
  }
  return [...found.values()];
}

/** The TORCHEDIT_UNKNOWN_WORDS warning for `words` (not empty) of `prompt`. */
export function unknownWordsWarning(model: string, prompt: string, words: readonly string[]): TorchEditWarning {
  const list = words.map((w) => JSON.stringify(w)).join(', ');
  const shown = JSON.stringify(prompt.length > SHOWN_PROMPT_LENGTH ? `${prompt.slice(0, SHOWN_PROMPT_LENGTH - 1)}…` : prompt);
  const message =
    words.length === 1
      ? `The model ${model} was not trained on the word ${list} in ${shown}: it does not know what it means`
      : `The model ${model} was not trained on the words ${list} in ${shown}: it does not know what they mean`;
  return new TorchEditWarning('TORCHEDIT_UNKNOWN_WORDS', message, { model, prompt, words });
}
