/**
 * Warnings: torchedit went on, but the result may not be what was asked for. Each is a
 * {@link TorchEditWarning} with a stable `code`, given to loadModel's `onWarning`, or else emitted
 * with `process.emitWarning` (printed by Node as `(node:PID) [CODE] TorchEditWarning: message`).
 */

/** Codes of the warnings torchedit gives; add, never rename. */
export type WarningCode =
  /** A prompt holds words the model's text encoder was not trained on (model.json `textEncoder.knownTokenIds`). */
  'TORCHEDIT_UNKNOWN_WORDS';

export class TorchEditWarning extends Error {
  readonly code: WarningCode;
  /** The name of the model (model.json `name`) the warning is about. */
  readonly model: string;
  /** With `TORCHEDIT_UNKNOWN_WORDS`: the prompt, whole. */
  readonly prompt?: string;
  /** With `TORCHEDIT_UNKNOWN_WORDS`: the words the model was not trained on, as typed, each once, in order. */
  readonly words?: readonly string[];

  constructor(code: WarningCode, message: string, details: { model: string; prompt?: string; words?: readonly string[] }) {
    super(message);
    this.name = 'TorchEditWarning';
    this.code = code;
    this.model = details.model;
    if (details.prompt !== undefined) this.prompt = details.prompt;
    if (details.words !== undefined) this.words = details.words;
  }
}

/** Where warnings go when loadModel gets no `onWarning`. */
export function emitWarning(warning: TorchEditWarning): void {
  process.emitWarning(warning);
}
