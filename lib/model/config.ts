/**
 * model.json (docs/bundle-format.md): read, validated field by field, and typed. Every rejection names the
 * file and the field, so a user can fix the bundle without reading this code.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TorchEditError } from '../errors.js';
import { notARegularFile } from '../io/regularFile.js';
import type { RecommendedSettings } from '../options/defaults.js';
import { checkValue, limitsOf, rangeText } from '../options/resolve.js';
import { defaultsPath, groupNames, optionSchema, type DefaultsKey, type Kind, type Limits, type OptionSpec } from '../options/schema.js';
import { isPlainObject } from '../options/validate.js';

export interface SchedulerConfig {
  numTrainTimesteps: number;
  betaSchedule: 'scaled_linear' | 'linear';
  betaStart: number;
  betaEnd: number;
  stepsOffset: number;
  setAlphaToOne: boolean;
  timestepSpacing: 'leading' | 'trailing' | 'linspace';
}

export interface TextEncoderConfig {
  maxLength: number;
  hiddenSize: number;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
  /**
   * The token ids the text encoder was trained on (model.json `textEncoder.knownTokenIds`): sorted,
   * unique, each below the tokenizer's vocabulary size. A prompt word with another id gets a
   * warning (loadModel's `onWarning`). Absent: every id is known (Stable Diffusion bundles).
   */
  knownTokenIds?: readonly number[];
}

/**
 * model.json `crossAttentionMaps` (format version 2): the UNet returns `(noise, maps)`, the maps
 * being its cross-attention probabilities averaged over heads and `layers`, `[B, L, h/d, w/d]`.
 */
export interface CrossAttentionMapsConfig {
  /** d: the maps' side is the latent side divided by it (4 for SD at 512 px: 16 × 16 maps). */
  downsample: 1 | 2 | 4 | 8;
  /** The attention layers averaged (names as the exporter's model calls them; informative). */
  layers: readonly string[];
}

export interface BundleConfig {
  format: 'torchedit-bundle';
  /** 1, or 2 for a bundle whose UNet also returns cross-attention maps (`crossAttentionMaps`). */
  formatVersion: 1 | 2;
  name: string;
  /** Latent side the model was trained at; image side = sampleSize × vaeScaleFactor. */
  sampleSize: number;
  latentChannels: number;
  vaeScaleFactor: number;
  scalingFactor: number;
  predictionType: 'epsilon' | 'v_prediction';
  scheduler: SchedulerConfig;
  textEncoder: TextEncoderConfig;
  dtype: 'float32' | 'float16' | 'bfloat16';
  exportedWith?: { torch?: string };
  /** Present when the UNet gives cross-attention maps (LEDITS++'s implicit masks need them). */
  crossAttentionMaps?: CrossAttentionMapsConfig;
  /** Settings the bundle recommends for itself, replacing the library's defaults for it (lib/options/schema.ts). */
  recommended?: RecommendedSettings;
}

/** The dtypes a bundle's weights may have (and loadModel may cast them to). */
export const BUNDLE_DTYPES = ['float32', 'float16', 'bfloat16'] as const;

/** The largest token id model.json may name. */
const MAX_TOKEN_ID = 1 << 24;

/** The files of a bundle besides model.json. */
export const bundleFiles = [
  'text_encoder.pt',
  'unet.pt',
  'vae_encoder.pt',
  'vae_decoder.pt',
  'tokenizer/vocab.json',
  'tokenizer/merges.txt',
];

function configError(dir: string, field: string, expected: string, actual: unknown): TorchEditError {
  return new TorchEditError(
    'ERR_MODEL_CONFIG',
    `${join(dir, 'model.json')}: expected ${expected} for ${field} but found ${JSON.stringify(actual)}`,
  );
}

/** Reads and validates `<dir>/model.json` and checks that every bundle file exists. */
export async function readBundleConfig(dir: string): Promise<BundleConfig> {
  const config = await readModelJson(dir);
  for (const name of bundleFiles) {
    const bad = await notARegularFile(join(dir, name));
    if (bad) throw new TorchEditError('ERR_MODEL_NOT_FOUND', `The bundle ${dir} lacks ${name}: ${bad.why}`, { cause: bad.cause });
  }
  return config;
}

/** Reads and validates `<dir>/model.json` alone (the CLI checks options against it before loading anything). */
export async function readModelJson(dir: string): Promise<BundleConfig> {
  const file = join(dir, 'model.json');
  const bad = await notARegularFile(file);
  if (bad) throw new TorchEditError('ERR_MODEL_NOT_FOUND', `No model bundle at ${dir}: ${bad.why}`, { cause: bad.cause });
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new TorchEditError(
      'ERR_MODEL_NOT_FOUND',
      `No model bundle at ${dir}: cannot read ${file} (${(error as NodeJS.ErrnoException).code})`,
      { cause: error },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new TorchEditError('ERR_MODEL_CONFIG', `${file} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (!isPlainObject(json)) throw configError(dir, '(root)', 'an object', json);
  return validate(dir, json);
}

function validate(dir: string, json: Record<string, unknown>): BundleConfig {
  if (json.format !== 'torchedit-bundle') throw configError(dir, 'format', "'torchedit-bundle'", json.format);
  if (json.formatVersion !== 1 && json.formatVersion !== 2) {
    throw new TorchEditError(
      'ERR_MODEL_VERSION',
      `${join(dir, 'model.json')}: formatVersion ${JSON.stringify(json.formatVersion)} is not supported by this torchedit (it reads versions 1 and 2); upgrade torchedit or re-export the bundle`,
    );
  }
  const int = (obj: Record<string, unknown>, key: string, prefix: string, min: number, max: number): number => {
    const v = obj[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      throw configError(dir, prefix + key, `an integer between ${min} and ${max}`, v);
    return v;
  };
  const num = (obj: Record<string, unknown>, key: string, prefix: string, min: number, max: number): number => {
    const v = obj[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= min || v > max)
      throw configError(dir, prefix + key, `a number in (${min}, ${max}]`, v);
    return v;
  };
  const choice = <T extends string>(obj: Record<string, unknown>, key: string, prefix: string, allowed: readonly T[], fallback?: T): T => {
    const v = obj[key] ?? fallback;
    if (typeof v !== 'string' || !allowed.includes(v as T)) throw configError(dir, prefix + key, `one of ${allowed.join(', ')}`, v);
    return v as T;
  };
  const object = (key: string): Record<string, unknown> => {
    const v = json[key];
    if (!isPlainObject(v)) throw configError(dir, key, 'an object', v);
    return v;
  };
  const s = object('scheduler');
  const t = object('textEncoder');
  const setAlphaToOne = s.setAlphaToOne;
  if (typeof setAlphaToOne !== 'boolean') throw configError(dir, 'scheduler.setAlphaToOne', 'a boolean', setAlphaToOne);
  const betaStart = num(s, 'betaStart', 'scheduler.', 0, 1);
  const betaEnd = num(s, 'betaEnd', 'scheduler.', 0, 1);
  if (betaEnd < betaStart) throw configError(dir, 'scheduler.betaEnd', `a number ≥ betaStart (${betaStart})`, betaEnd);
  // The UNet halves the latents three times, and every default image size is sampleSize × vaeScaleFactor,
  // so another sampleSize loaded but refused every call without an explicit size (found by fuzzing).
  if (typeof json.sampleSize === 'number' && Number.isInteger(json.sampleSize) && json.sampleSize % 8 !== 0)
    throw configError(dir, 'sampleSize', 'a multiple of 8 (the UNet halves the latents three times)', json.sampleSize);
  const exportedWith = isPlainObject(json.exportedWith)
    ? { torch: typeof json.exportedWith.torch === 'string' ? json.exportedWith.torch : undefined }
    : undefined;
  const config: BundleConfig = {
    format: 'torchedit-bundle',
    formatVersion: json.formatVersion,
    name: typeof json.name === 'string' ? json.name : 'unnamed',
    sampleSize: int(json, 'sampleSize', '', 1, 4096),
    latentChannels: int(json, 'latentChannels', '', 1, 64),
    vaeScaleFactor: int(json, 'vaeScaleFactor', '', 1, 64),
    scalingFactor: num(json, 'scalingFactor', '', 0, 1000),
    predictionType: choice(json, 'predictionType', '', ['epsilon', 'v_prediction'] as const),
    scheduler: {
      numTrainTimesteps: int(s, 'numTrainTimesteps', 'scheduler.', 1, 100000),
      betaSchedule: choice(s, 'betaSchedule', 'scheduler.', ['scaled_linear', 'linear'] as const),
      betaStart,
      betaEnd,
      stepsOffset: int(s, 'stepsOffset', 'scheduler.', 0, 1000),
      setAlphaToOne,
      timestepSpacing: choice(s, 'timestepSpacing', 'scheduler.', ['leading', 'trailing', 'linspace'] as const, 'leading'),
    },
    textEncoder: {
      maxLength: int(t, 'maxLength', 'textEncoder.', 3, 4096),
      hiddenSize: int(t, 'hiddenSize', 'textEncoder.', 1, 65536),
      bosTokenId: int(t, 'bosTokenId', 'textEncoder.', 0, MAX_TOKEN_ID),
      eosTokenId: int(t, 'eosTokenId', 'textEncoder.', 0, MAX_TOKEN_ID),
      padTokenId: int(t, 'padTokenId', 'textEncoder.', 0, MAX_TOKEN_ID),
    },
    dtype: choice(json, 'dtype', '', BUNDLE_DTYPES, 'float32'),
    exportedWith,
  };
  if (t.knownTokenIds !== undefined) config.textEncoder.knownTokenIds = knownTokenIds(dir, t.knownTokenIds);
  // Version 2 is the version with maps: the UNet's signature differs, so an older torchedit must refuse it.
  if (json.formatVersion === 2) config.crossAttentionMaps = crossAttentionMaps(dir, json.crossAttentionMaps);
  else if (json.crossAttentionMaps !== undefined)
    throw configError(
      dir,
      'crossAttentionMaps',
      'no such field in formatVersion 1 (a bundle with maps is formatVersion 2)',
      json.crossAttentionMaps,
    );
  if (json.recommended !== undefined) config.recommended = recommended(dir, json.recommended, limitsOf(config));
  return config;
}

/** model.json `crossAttentionMaps`: `{ downsample: 1 | 2 | 4 | 8, layers: string[] }`. */
function crossAttentionMaps(dir: string, value: unknown): CrossAttentionMapsConfig {
  if (!isPlainObject(value)) throw configError(dir, 'crossAttentionMaps', 'an object (formatVersion 2 bundles have maps)', value);
  const { downsample, layers } = value;
  if (downsample !== 1 && downsample !== 2 && downsample !== 4 && downsample !== 8)
    throw configError(dir, 'crossAttentionMaps.downsample', 'one of 1, 2, 4, 8', downsample);
  if (!Array.isArray(layers) || layers.length === 0 || !layers.every((l) => typeof l === 'string'))
    throw configError(dir, 'crossAttentionMaps.layers', 'a non-empty array of layer names', layers);
  return { downsample, layers };
}

/** model.json `textEncoder.knownTokenIds`: an array of integer ids, strictly increasing. */
function knownTokenIds(dir: string, value: unknown): number[] {
  const field = 'textEncoder.knownTokenIds';
  if (!Array.isArray(value)) throw configError(dir, field, 'an array of token ids', value);
  value.forEach((id: unknown, i) => {
    const previous = i > 0 ? (value[i - 1] as number) : -1;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_TOKEN_ID)
      throw configError(dir, `${field}[${i}]`, `an integer between 0 and ${MAX_TOKEN_ID}`, id);
    if (id <= previous)
      throw configError(
        dir,
        `${field}[${i}]`,
        `an id greater than ${previous} (the id before it: the ids are sorted, without duplicates)`,
        id,
      );
  });
  return value as number[];
}

/**
 * The check model.json alone cannot make: every known id is an id of the bundle's vocabulary, below
 * `vocabSize` (one more than tokenizer/vocab.json's largest id). Throws ERR_MODEL_CONFIG naming the first that is not.
 */
export function checkKnownTokenIds(dir: string, config: BundleConfig, vocabSize: number): void {
  const ids = config.textEncoder.knownTokenIds ?? [];
  const i = ids.findIndex((id) => id >= vocabSize);
  if (i >= 0) {
    const expected = `an id below ${vocabSize} (the largest id in tokenizer/vocab.json is ${vocabSize - 1})`;
    throw configError(dir, `textEncoder.knownTokenIds[${i}]`, expected, ids[i]);
  }
}

/**
 * model.json `recommended`: every group and field optional; each value checked as the option it
 * replaces the default of (lib/options/schema.ts), with the bounds this model.json sets.
 */
function recommended(dir: string, value: unknown, limits: Limits): RecommendedSettings {
  if (!isPlainObject(value)) throw configError(dir, 'recommended', 'an object', value);
  const groups = new Map(
    groupNames.map((g) => [optionSchema[g].defaultsKey, optionSchema[g].options.filter((o) => o.recommended)] as const),
  );
  for (const [group, fields] of Object.entries(value)) {
    const specs = groups.get(group as DefaultsKey);
    if (!specs) throw configError(dir, `recommended.${group}`, `one of the groups ${[...groups.keys()].join(', ')}`, group);
    checkFields(
      dir,
      `recommended.${group}`,
      fields,
      specs.map((spec) => [defaultsPath(spec), spec] as const),
      limits,
    );
  }
  return value as RecommendedSettings;
}

/** Checks the object at `field` against the options whose key paths start there. */
function checkFields(
  dir: string,
  field: string,
  fields: unknown,
  specs: readonly (readonly [string[], OptionSpec])[],
  limits: Limits,
): void {
  if (!isPlainObject(fields)) throw configError(dir, field, 'an object', fields);
  const keys = [...new Set(specs.map(([path]) => path[0]))];
  for (const [key, v] of Object.entries(fields)) {
    const here = specs.filter(([path]) => path[0] === key);
    if (here.length === 0) throw configError(dir, `${field}.${key}`, `one of the fields ${keys.join(', ')}`, key);
    const leaf = here.find(([path]) => path.length === 1);
    if (!leaf) {
      checkFields(
        dir,
        `${field}.${key}`,
        v,
        here.map(([path, spec]) => [path.slice(1), spec] as const),
        limits,
      );
      continue;
    }
    const spec = leaf[1];
    // skip is recommended as a fraction of the inversion's steps (the count depends on them)
    const kind: Kind = spec.kind.type === 'skip' ? { type: 'number', min: 0, max: 1, minExclusive: true, maxExclusive: true } : spec.kind;
    const checked = checkValue(kind, v, limits);
    if (!checked.ok) throw configError(dir, `${field}.${key}`, rangeText(kind, limits), v);
  }
}

/** Compares dotted versions numerically ("1.13.0a0" ≈ 1.13.0): negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string) => v.split(/[.+]/).map((p) => parseInt(p, 10) || 0);
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
