/**
 * Files torchedit writes for one model (an inversion, an Imagic result): safetensors whose
 * metadata names the artifact's format and version, its settings (JSON), and the fingerprint of
 * the model that made it, so a file is never applied to another model. One writer and one
 * reader with the same checks for every kind.
 */
import { createHash } from 'node:crypto';
import { TorchEditError } from '../errors.js';
import type { StableDiffusionModel } from '../model/model.js';
import type { DType, Tensor } from '../tensor.js';
import { readSafetensors, writeSafetensors, type RawTensor } from './safetensors.js';

export interface ArtifactKind {
  /** `format` metadata, e.g. `'torchedit-inversion'`. */
  format: string;
  /** The version written. */
  version: string;
  /** Older versions still read. */
  reads?: readonly string[];
  /** How messages call it, e.g. `'inversion'`. */
  what: string;
}

/**
 * The settings every artifact made from an image records besides its own: the seed, as a decimal
 * string (seeds may exceed 2^53), and the image size, from the image's latents `x0` `[1, C, h, w]`.
 */
export function imageRunSettings(model: StableDiffusionModel, x0: Tensor, seed: bigint): { seed: string; width: number; height: number } {
  const [, , h, w] = x0.shape;
  const scale = model.config.vaeScaleFactor;
  return { seed: seed.toString(), width: w * scale, height: h * scale };
}

export async function writeArtifact(
  path: string,
  kind: ArtifactKind,
  tensors: Map<string, RawTensor>,
  settings: object,
  model: StableDiffusionModel,
  fingerprint: string,
): Promise<void> {
  const metadata: Record<string, string> = {
    format: kind.format,
    version: kind.version,
    settings: JSON.stringify(settings),
    modelFingerprint: fingerprint,
    modelName: model.config.name,
  };
  await writeSafetensors(path, tensors, { ...metadata, contentSha256: contentHash(metadata, tensors) });
}

/**
 * SHA-256 over the metadata (but this hash) and every tensor's name, dtype, shape and bytes, in
 * name order: a file modified or damaged after writing — a weight, the settings, the fingerprint —
 * no longer matches. Files written before it was recorded have none and are not checked.
 */
function contentHash(metadata: Record<string, string>, tensors: ReadonlyMap<string, RawTensor>): string {
  const hash = createHash('sha256');
  for (const key of Object.keys(metadata).sort()) if (key !== 'contentSha256') hash.update(`${key}=${metadata[key]}\0`);
  for (const name of [...tensors.keys()].sort()) {
    const t = tensors.get(name)!;
    hash.update(`${name}:${t.dtype}:${t.shape.join(',')}\0`);
    hash.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return hash.digest('hex');
}

/** What a tensor of an artifact must be: its dtype, and its shape (`undefined`: any size on that axis). */
export interface TensorSpec {
  dtype: DType;
  shape: readonly (number | undefined)[];
}

export interface Artifact<S> {
  /** The file's format version (one of the kind's `version` and `reads`). */
  version: string;
  settings: S;
  fingerprint: string;
  /** Every tensor's name, in the file's order. */
  names: string[];
  /** A tensor the file must hold, as `spec` says when given (ERR_FILE_FORMAT otherwise). */
  tensor(name: string, spec?: TensorSpec): RawTensor;
  /** A tensor the file may hold; as `spec` says when it does and `spec` is given. */
  optional(name: string, spec?: TensorSpec): RawTensor | undefined;
}

/**
 * Checks the settings an artifact recorded: `check` returns them typed, or calls `fail` with the
 * first field that is not what the writer records (ERR_FILE_FORMAT), so a hand-edited file never
 * reaches the native code with a wrong value.
 */
export type SettingsCheck<S> = (settings: Record<string, unknown>, fail: (field: string, expected: string) => never) => S;

/**
 * Reads an artifact written for `model`: ERR_FILE_FORMAT for another kind or version, settings or
 * tensors that are not what the writer records, ERR_MODEL_MISMATCH for another model.
 */
export async function readArtifact<S>(
  path: string,
  kind: ArtifactKind,
  model: StableDiffusionModel,
  checkSettings: SettingsCheck<S>,
): Promise<Artifact<S>> {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format !== kind.format) {
    throw new TorchEditError('ERR_FILE_FORMAT', `${path} is not a torchedit ${kind.what} (format ${JSON.stringify(metadata.format)})`);
  }
  const versions = [kind.version, ...(kind.reads ?? [])];
  if (!versions.includes(metadata.version)) {
    throw new TorchEditError(
      'ERR_FILE_FORMAT',
      `${path} is a ${kind.what} of format version ${metadata.version}; this torchedit reads version ${versions.join(', ')}`,
    );
  }
  if (metadata.contentSha256 !== undefined && metadata.contentSha256 !== contentHash(metadata, tensors)) {
    throw new TorchEditError('ERR_FILE_FORMAT', `${path} was modified or damaged after it was written (its content hash does not match)`);
  }
  const fingerprint = await model.fingerprint();
  if (metadata.modelFingerprint !== fingerprint) {
    throw new TorchEditError(
      'ERR_MODEL_MISMATCH',
      `${path} was made with another model (${metadata.modelName ?? 'unknown'}) than ${model.config.name} at ${model.path}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(metadata.settings);
  } catch {
    throw new TorchEditError('ERR_FILE_FORMAT', `${path} has unreadable settings metadata`);
  }
  const fail = (field: string, expected: string): never => {
    const found = field === '' ? json : (json as Record<string, unknown>)[field];
    throw new TorchEditError(
      'ERR_FILE_FORMAT',
      `${path}: expected ${expected} for the ${kind.what}'s setting ${field || '(all)'} but found ${JSON.stringify(found) ?? 'nothing'}`,
    );
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('', 'an object');
  const settings = checkSettings(json as Record<string, unknown>, fail);
  // Without a spec the caller checks the tensor itself (an Imagic save's trained parameters are
  // checked against the UNet's, natively).
  const checked = (name: string, spec?: TensorSpec): RawTensor | undefined => {
    const raw = tensors.get(name);
    if (raw === undefined || spec === undefined) return raw;
    const fits = raw.shape.length === spec.shape.length && spec.shape.every((n, i) => n === undefined || raw.shape[i] === n);
    if (raw.dtype !== spec.dtype || !fits) {
      const wanted = spec.shape.map((n) => n ?? '*').join(', ');
      throw new TorchEditError(
        'ERR_FILE_FORMAT',
        `${path}: the tensor ${name} is ${raw.dtype} [${raw.shape.join(', ')}]; this ${kind.what} needs ${spec.dtype} [${wanted}]`,
      );
    }
    return raw;
  };
  return {
    version: metadata.version,
    settings,
    fingerprint,
    names: [...tensors.keys()],
    tensor(name, spec) {
      const raw = checked(name, spec);
      if (!raw) throw new TorchEditError('ERR_FILE_FORMAT', `${path} lacks the tensor ${name}`);
      return raw;
    },
    optional: checked,
  };
}

/** Checks for recorded settings, each returning the value or calling `fail`. */
export const setting = {
  string(s: Record<string, unknown>, field: string, fail: (field: string, expected: string) => never): string {
    const v = s[field];
    return typeof v === 'string' ? v : fail(field, 'a string');
  },
  number(s: Record<string, unknown>, field: string, fail: (field: string, expected: string) => never, min: number, max: number): number {
    const v = s[field];
    return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? v : fail(field, `a number in [${min}, ${max}]`);
  },
  integer(s: Record<string, unknown>, field: string, fail: (field: string, expected: string) => never, min: number, max: number): number {
    const v = s[field];
    return Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max
      ? (v as number)
      : fail(field, `an integer between ${min} and ${max}`);
  },
  /** A seed as written: a decimal string below 2^64. */
  seed(s: Record<string, unknown>, fail: (field: string, expected: string) => never): string {
    const v = s.seed;
    return typeof v === 'string' && /^\d{1,20}$/.test(v) && BigInt(v) < 1n << 64n ? v : fail('seed', 'a decimal seed below 2^64');
  },
  /** width and height as written: multiples of the model's size multiple (what the image's latents have). */
  size(
    s: Record<string, unknown>,
    fail: (field: string, expected: string) => never,
    model: StableDiffusionModel,
  ): { width: number; height: number } {
    const side = (field: string): number => {
      const v = s[field];
      const m = model.sizeMultiple;
      return Number.isSafeInteger(v) && (v as number) > 0 && (v as number) <= 1 << 16 && (v as number) % m === 0
        ? (v as number)
        : fail(field, `a positive multiple of ${m}`);
    };
    return { width: side('width'), height: side('height') };
  },
};
