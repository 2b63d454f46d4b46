/**
 * model.json (BUNDLE.md): read, validated field by field, and typed. Every rejection names the
 * file and the field, so a user can fix the bundle without reading this code.
 */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TorchEditError } from '../errors.js';
import type { RecommendedSettings } from '../options/defaults.js';
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
}

export interface BundleConfig {
  format: 'torchedit-bundle';
  formatVersion: 1;
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
  /** Settings the bundle recommends for itself, replacing the library's defaults for it (lib/options/defaults.ts). */
  recommended?: RecommendedSettings;
}

/** The files of a bundle besides model.json. */
export const bundleFiles = ['text_encoder.pt', 'unet.pt', 'vae_encoder.pt', 'vae_decoder.pt', 'tokenizer/vocab.json', 'tokenizer/merges.txt'];

function configError(dir: string, field: string, expected: string, actual: unknown): TorchEditError {
  return new TorchEditError('ERR_MODEL_CONFIG', `${join(dir, 'model.json')}: expected ${expected} for ${field} but found ${JSON.stringify(actual)}`);
}

/** Reads and validates `<dir>/model.json` and checks that every bundle file exists. */
export async function readBundleConfig(dir: string): Promise<BundleConfig> {
  const file = join(dir, 'model.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new TorchEditError('ERR_MODEL_NOT_FOUND', `No model bundle at ${dir}: cannot read ${file} (${(error as NodeJS.ErrnoException).code})`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new TorchEditError('ERR_MODEL_CONFIG', `${file} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (!isPlainObject(json)) throw configError(dir, '(root)', 'an object', json);
  const config = validate(dir, json);
  for (const name of bundleFiles) {
    try {
      await access(join(dir, name));
    } catch (error) {
      throw new TorchEditError('ERR_MODEL_NOT_FOUND', `The bundle ${dir} lacks ${name}`, { cause: error });
    }
  }
  return config;
}

function validate(dir: string, json: Record<string, unknown>): BundleConfig {
  if (json.format !== 'torchedit-bundle') throw configError(dir, 'format', "'torchedit-bundle'", json.format);
  if (json.formatVersion !== 1) {
    throw new TorchEditError('ERR_MODEL_VERSION', `${join(dir, 'model.json')}: formatVersion ${JSON.stringify(json.formatVersion)} is not supported by this torchedit (it reads version 1); upgrade torchedit or re-export the bundle`);
  }
  const int = (obj: Record<string, unknown>, key: string, prefix: string, min: number, max: number): number => {
    const v = obj[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw configError(dir, prefix + key, `an integer between ${min} and ${max}`, v);
    return v;
  };
  const num = (obj: Record<string, unknown>, key: string, prefix: string, min: number, max: number): number => {
    const v = obj[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= min || v > max) throw configError(dir, prefix + key, `a number in (${min}, ${max}]`, v);
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
  const exportedWith = isPlainObject(json.exportedWith) ? { torch: typeof json.exportedWith.torch === 'string' ? json.exportedWith.torch : undefined } : undefined;
  return {
    format: 'torchedit-bundle',
    formatVersion: 1,
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
      bosTokenId: int(t, 'bosTokenId', 'textEncoder.', 0, 1 << 24),
      eosTokenId: int(t, 'eosTokenId', 'textEncoder.', 0, 1 << 24),
      padTokenId: int(t, 'padTokenId', 'textEncoder.', 0, 1 << 24),
    },
    dtype: choice(json, 'dtype', '', ['float32', 'float16', 'bfloat16'] as const, 'float32'),
    exportedWith,
    ...(json.recommended === undefined ? {} : { recommended: recommended(dir, json.recommended) }),
  };
}

/** model.json `recommended`: every group and field optional; each value checked like the option it stands for. */
function recommended(dir: string, value: unknown): RecommendedSettings {
  if (!isPlainObject(value)) throw configError(dir, 'recommended', 'an object', value);
  type Check = (v: unknown) => boolean;
  const number = (min: number, max: number): Check => (v) => typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;
  const integer = (min: number, max: number): Check => (v) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
  const stage: Check = (v) => isPlainObject(v) && integer(1, 1_000_000)(v.steps) && number(Number.MIN_VALUE, 1)(v.lr);
  const schema: Record<string, Record<string, [Check, string]>> = {
    textToImage: { steps: [integer(1, 100000), 'an integer ≥ 1'], guidanceScale: [number(0, 1000), 'a number in [0, 1000]'] },
    inversion: { steps: [integer(1, 100000), 'an integer ≥ 1'], sourceGuidanceScale: [number(0, 1000), 'a number in [0, 1000]'] },
    edit: {
      guidanceScale: [number(0, 1000), 'a number in [0, 1000]'],
      skipFraction: [(v) => typeof v === 'number' && v > 0 && v < 1, 'a fraction in (0, 1)'],
      maskMode: [(v) => v === 'channel' || v === 'sum', "'channel' or 'sum'"],
    },
    concept: { scale: [number(0, 1000), 'a number in [0, 1000]'], warmup: [integer(0, 100000), 'an integer ≥ 0'], threshold: [(v) => typeof v === 'number' && v >= 0 && v < 1, 'a number in [0, 1)'] },
    imagic: { embedding: [stage, 'an object { steps, lr }'], finetune: [stage, 'an object { steps, lr }'] },
    imagicGenerate: { eta: [number(-10, 10), 'a number in [-10, 10]'], steps: [integer(1, 100000), 'an integer ≥ 1'], guidanceScale: [number(0, 1000), 'a number in [0, 1000]'] },
  };
  for (const [group, fields] of Object.entries(value)) {
    const known = schema[group];
    if (!known) throw configError(dir, `recommended.${group}`, `one of the groups ${Object.keys(schema).join(', ')}`, group);
    if (!isPlainObject(fields)) throw configError(dir, `recommended.${group}`, 'an object', fields);
    for (const [key, v] of Object.entries(fields)) {
      const rule = known[key];
      if (!rule) throw configError(dir, `recommended.${group}.${key}`, `one of the fields ${Object.keys(known).join(', ')}`, key);
      if (!rule[0](v)) throw configError(dir, `recommended.${group}.${key}`, rule[1], v);
    }
  }
  return value as RecommendedSettings;
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
