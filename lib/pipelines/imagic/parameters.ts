/**
 * Which UNet parameters Imagic's stage B fine-tunes (`finetune.parameters`): a preset or name
 * patterns, matched against the TorchScript UNet's dotted parameter names. Training a subset keeps
 * gradients and Adam state to those parameters and shares the rest with the loaded model; what is
 * saved is the subset only.
 */
import { TorchEditError } from '../../errors.js';
import type { FinetuneParameters } from './train.js';

/**
 * The presets' patterns. Stable Diffusion's transformer blocks (and the shipped models') name their
 * self-attention `attn1` and their cross-attention to the text `attn2`; cross-attention alone is
 * what text-conditioned fine-tunes such as Custom Diffusion (arXiv:2212.04488 §3.2) train.
 */
const PRESETS: Record<Exclude<FinetuneParameters, string[]>, readonly string[] | null> = {
  all: null,
  attention: ['attn1', 'attn2'],
  'cross-attention': ['attn2'],
};

const escapeRegExp = (s: string) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');

/**
 * Whether `name` matches `pattern`: with `*` a glob over the whole name (`*` any characters, dots
 * included); without, a run of whole dotted parts (`attn2.to_k` matches
 * `down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight`, not `attn2.to_kv.weight`).
 */
export function matchesPattern(name: string, pattern: string): boolean {
  if (pattern.includes('*')) return new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`).test(name);
  return `.${name}.`.includes(`.${pattern}.`);
}

/** A few names spread over the UNet, for error messages. */
function sampleOf(names: readonly string[], count = 8): string[] {
  if (names.length <= count) return [...names];
  return Array.from({ length: count }, (_, i) => names[Math.floor((i * names.length) / count)]);
}

/**
 * The names of `names` (the UNet's, in its order) that `selection` chooses. ERR_INVALID_OPTION,
 * listing some of the UNet's names, when it chooses none.
 */
export function selectParameters(names: readonly string[], selection: FinetuneParameters, option = 'finetune.parameters'): string[] {
  const patterns = typeof selection === 'string' ? PRESETS[selection] : selection;
  if (patterns === null) return [...names];
  const chosen = names.filter((name) => patterns.some((p) => matchesPattern(name, p)));
  if (chosen.length === 0) {
    throw new TorchEditError(
      'ERR_INVALID_OPTION',
      `${option} ${JSON.stringify(selection)} matches none of the UNet's ${names.length} parameters; its names look like ${sampleOf(names).join(', ')}`,
      { option },
    );
  }
  return chosen;
}
