/**
 * Files torchedit writes for one model (an inversion, an Imagic result): safetensors whose
 * metadata names the artifact's format and version, its settings (JSON), and the fingerprint of
 * the model that made it, so a file is never applied to another model. One writer and one
 * reader with the same checks for every kind.
 */
import { createHash } from 'node:crypto';
import { TorchEditError } from '../errors.js';
import type { StableDiffusionModel } from '../model/model.js';
import type { Tensor } from '../tensor.js';
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

export interface Artifact<S> {
  /** The file's format version (one of the kind's `version` and `reads`). */
  version: string;
  settings: S;
  fingerprint: string;
  /** Every tensor's name, in the file's order. */
  names: string[];
  /** A tensor the file must hold (ERR_FILE_FORMAT otherwise). */
  tensor(name: string): RawTensor;
  /** A tensor the file may hold. */
  optional(name: string): RawTensor | undefined;
}

/** Reads an artifact written for `model`: ERR_FILE_FORMAT for another kind or version or unreadable settings, ERR_MODEL_MISMATCH for another model. */
export async function readArtifact<S>(path: string, kind: ArtifactKind, model: StableDiffusionModel): Promise<Artifact<S>> {
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
  let settings: S;
  try {
    settings = JSON.parse(metadata.settings) as S;
  } catch {
    throw new TorchEditError('ERR_FILE_FORMAT', `${path} has unreadable settings metadata`);
  }
  return {
    version: metadata.version,
    settings,
    fingerprint,
    names: [...tensors.keys()],
    tensor(name) {
      const raw = tensors.get(name);
      if (!raw) throw new TorchEditError('ERR_FILE_FORMAT', `${path} lacks the tensor ${name}`);
      return raw;
    },
    optional: (name) => tensors.get(name),
  };
}
