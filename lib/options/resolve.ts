/**
 * Validation and defaults of every pipeline's options, driven by the schema (lib/options/schema.ts).
 * Pure functions: no model, no native code. The pipelines call them first; the CLI calls them
 * before it loads a model, with `name` mapping option paths to its flags.
 *
 * Each returns the options fully resolved (defaults applied, seeds drawn, skip as a count), or
 * throws ERR_INVALID_OPTION: "Expected <range> for <name> but received <value>", with the option's
 * path in the error's `option`.
 */
import { randomBytes } from 'node:crypto';
import { TorchEditError, invalidOption } from '../errors.js';
import { notAMultipleMessage, type ResizeMode } from '../image/read.js';
import type { JobOptions } from '../jobs.js';
import type { BundleConfig } from '../model/config.js';
import type { TextToImageOptions } from '../pipelines/textToImage.js';
import type { InvertOptions } from '../pipelines/ledits/invert.js';
import type { EditConcept, EditOptions, ImplicitMaskMode, MaskInput } from '../pipelines/ledits/edit.js';
import type { FinetuneParameters, ImagicOptions } from '../pipelines/imagic/train.js';
import type { ImagicGenerateOptions } from '../pipelines/imagic/result.js';
import { Tensor } from '../tensor.js';
import { getPath, setPath, type ModelDefaults } from './defaults.js';
import {
  defaultsPath,
  hasValueDefault,
  optionSchema,
  optionSpec,
  type Bound,
  type GroupName,
  type Kind,
  type Limits,
  type OptionSpec,
  type Scheduler,
} from './schema.js';
import { SEED_TEXT, integerText, isIntegerIn, isNumberIn, isPlainObject, numberText, oneOfText, toSeed } from './validate.js';

export interface ValidationContext {
  /** The defaults in force (`model.defaults`, or `defaultsFor(model.json's recommended)`). */
  defaults: ModelDefaults;
  /** Bounds from the model and the inversion; a bound not given is not checked. */
  limits?: Limits;
  /** How messages name an option path (the CLI names its flags); the path itself by default. */
  name?: (path: string) => string;
  /**
   * The inversion's scheduler: with `'dpmsolver++'` an unset option that has a `dpmDefault` takes
   * it (LEDITS++'s). An edit's is its inversion's; model.invert's comes from its own `scheduler`.
   */
  scheduler?: Scheduler;
}

/** The validation context of a loaded model (or of its model.json alone, before loading). */
export function contextOf(
  model: { defaults: ModelDefaults; config: BundleConfig },
  extra: Limits = {},
  scheduler?: Scheduler,
): ValidationContext {
  return { defaults: model.defaults, limits: { ...limitsOf(model.config), ...extra }, scheduler };
}

/** The bounds a bundle's model.json sets on options. */
export function limitsOf(config: BundleConfig): Limits {
  return {
    numTrainTimesteps: config.scheduler.numTrainTimesteps,
    sizeMultiple: 8 * config.vaeScaleFactor,
    imageSize: config.sampleSize * config.vaeScaleFactor,
  };
}

/** A random seed below 2^63 (recorded in results, so they can be reproduced). */
export function randomSeed(): bigint {
  return randomBytes(8).readBigUInt64LE() >> 1n;
}

function boundValue(bound: Bound, limits: Limits): number | undefined {
  if (typeof bound === 'number') return bound;
  const limit = limits[bound.limit];
  return limit === undefined ? undefined : limit - (bound.minus ?? 0);
}

function boundText(bound: Bound, limits: Limits): string {
  const value = boundValue(bound, limits);
  if (value !== undefined) return String(value);
  return typeof bound === 'number' ? String(bound) : `${bound.limit}${bound.minus ? ` − ${bound.minus}` : ''}`;
}

/** The range a kind accepts, in the words of the error messages; unknown limits by name. */
export function rangeText(kind: Kind, limits: Limits = {}): string {
  switch (kind.type) {
    case 'integer':
      return integerText(kind.min, boundText(kind.max, limits));
    case 'number':
      return numberText(kind.min, kind.max, kind);
    case 'string':
      return kind.nonEmpty ? 'non-empty string' : 'string';
    case 'boolean':
      return 'boolean';
    case 'enum':
      return oneOfText(kind.values);
    case 'seed':
      return SEED_TEXT;
    case 'imageSide':
      return `positive integer, a multiple of ${limits.sizeMultiple ?? '8 × vaeScaleFactor'}`;
    case 'skip':
      return `${integerText(0, boundText(SKIP_MAX, limits))}, or a fraction in (0, 1)`;
    case 'list':
      return `array of ${kind.of} objects`;
    case 'mask':
      return 'image path, Buffer, Uint8Array, sharp instance or Tensor';
    case 'patterns':
      return `${oneOfText(kind.presets)}, or a non-empty array of name patterns`;
    case 'numbers':
      return `non-empty array of numbers in [${kind.min}, ${kind.max}]`;
  }
}

const SKIP_MAX: Bound = { limit: 'inversionSteps', minus: 1 };

type Checked = { ok: true; value: unknown } | { ok: false; expected: string } | { ok: false; message: (name: string) => string };

/** Checks one value against its kind (not `list`, which resolveGroup handles). */
export function checkValue(kind: Kind, value: unknown, limits: Limits = {}): Checked {
  const fail = (expected: string): Checked => ({ ok: false, expected });
  switch (kind.type) {
    case 'integer': {
      const max = boundValue(kind.max, limits) ?? Number.MAX_SAFE_INTEGER;
      return isIntegerIn(value, kind.min, max) ? { ok: true, value } : fail(rangeText(kind, limits));
    }
    case 'number':
      return isNumberIn(value, kind.min, kind.max, kind) ? { ok: true, value } : fail(rangeText(kind, limits));
    case 'string':
      return typeof value === 'string' && (!kind.nonEmpty || value.length > 0) ? { ok: true, value } : fail(rangeText(kind));
    case 'boolean':
      return typeof value === 'boolean' ? { ok: true, value } : fail('boolean');
    case 'enum':
      return typeof value === 'string' && kind.values.includes(value) ? { ok: true, value } : fail(rangeText(kind));
    case 'seed': {
      const seed = toSeed(value);
      return seed === undefined ? fail(SEED_TEXT) : { ok: true, value: seed };
    }
    case 'imageSide': {
      if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) return fail('positive integer');
      const multiple = limits.sizeMultiple;
      if (multiple !== undefined && value % multiple !== 0)
        return { ok: false, message: (name) => notAMultipleMessage(name, value, multiple) };
      return { ok: true, value };
    }
    case 'skip': {
      // A fraction in (0, 1) of the inversion's steps, else an integer count.
      const steps = limits.inversionSteps;
      if (typeof value === 'number' && value > 0 && value < 1) {
        if (steps === undefined) return { ok: true, value };
        const count = Math.round(value * steps);
        return count < steps ? { ok: true, value: count } : fail(`integer below the inversion's ${steps} steps`);
      }
      const max = steps === undefined ? Number.MAX_SAFE_INTEGER : steps - 1;
      return isIntegerIn(value, 0, max) ? { ok: true, value } : fail(integerText(0, boundText(SKIP_MAX, limits)));
    }
    case 'list':
      return Array.isArray(value) ? { ok: true, value } : fail('array');
    case 'mask':
      return isMaskInput(value) ? { ok: true, value } : fail(rangeText(kind));
    case 'patterns': {
      if (typeof value === 'string' && kind.presets.includes(value)) return { ok: true, value };
      const patterns = Array.isArray(value) && value.length > 0 && value.every((p) => typeof p === 'string' && p.length > 0);
      return patterns ? { ok: true, value: [...(value as string[])] } : fail(rangeText(kind));
    }
    case 'numbers': {
      const numbers = Array.isArray(value) && value.length > 0 && value.every((v) => isNumberIn(v, kind.min, kind.max, {}));
      return numbers ? { ok: true, value: [...(value as number[])] } : fail(rangeText(kind));
    }
  }
}

/** A mask's input: what readImage takes, or a Tensor (checked by shape where it is used). */
function isMaskInput(value: unknown): boolean {
  if (typeof value === 'string') return value.length > 0;
  if (value instanceof Uint8Array || value instanceof Tensor) return true;
  // a sharp instance, without importing sharp here
  return typeof value === 'object' && value !== null && typeof (value as { toBuffer?: unknown }).toBuffer === 'function';
}

function nameOf(ctx: ValidationContext, path: string): string {
  return ctx.name ? ctx.name(path) : path;
}

function failure(ctx: ValidationContext, path: string, checked: Exclude<Checked, { ok: true }>, value: unknown): TorchEditError {
  if ('message' in checked) return new TorchEditError('ERR_INVALID_OPTION', checked.message(nameOf(ctx, path)), { option: path });
  return invalidOption(nameOf(ctx, path), checked.expected, value, path);
}

/** The value an unset option takes: the model's default, or what its kind does without one. */
function unsetValue(group: GroupName, spec: OptionSpec, ctx: ValidationContext): unknown {
  if (ctx.scheduler === 'dpmsolver++' && spec.dpmDefault !== undefined) return spec.dpmDefault;
  if (hasValueDefault(spec)) return getPath(ctx.defaults[optionSchema[group].defaultsKey], defaultsPath(spec));
  if (spec.required) return undefined;
  switch (spec.kind.type) {
    case 'seed':
      return randomSeed();
    case 'imageSide':
      return ctx.limits?.imageSize;
    case 'list':
      return [];
    default:
      return null; // e.g. a concept's cooldown: never
  }
}

function resolveOption(group: GroupName, spec: OptionSpec, raw: unknown, ctx: ValidationContext, path: string): unknown {
  // null is unset, as `??` treats it
  const value = raw === undefined || raw === null ? unsetValue(group, spec, ctx) : raw;
  if (value === null || (value === undefined && !spec.required)) return value;
  const checked = checkValue(spec.kind, value, ctx.limits);
  if (!checked.ok) throw failure(ctx, path, checked, value);
  if (spec.kind.type !== 'list') return checked.value;
  const of = spec.kind.of;
  const item = spec.kind.item;
  return (value as unknown[]).map((element, i) => {
    const at = `${path}[${i}]`;
    if (!isPlainObject(element)) throw invalidOption(nameOf(ctx, at), item, element, at);
    return resolveGroup(of, element, ctx, `${at}.`);
  });
}

/** Validates and defaults every option of `group` in `input` (an options object or undefined). */
function resolveGroup(
  group: GroupName,
  input: unknown,
  ctx: ValidationContext,
  prefix = '',
  except: readonly string[] = [],
): Record<string, unknown> {
  const source = input ?? {};
  if (!isPlainObject(source)) throw invalidOption(prefix === '' ? 'options' : nameOf(ctx, prefix.slice(0, -1)), 'object', source);
  const specs = optionSchema[group].options;
  const out: Record<string, unknown> = {};
  // The option that selects the defaults of the others is resolved first.
  for (const spec of specs.filter((s) => s.selectsDefaults)) {
    ctx = { ...ctx, scheduler: resolveOption(group, spec, source[spec.name], ctx, prefix + spec.name) as Scheduler };
  }
  for (const spec of specs) {
    if (except.includes(spec.name)) continue;
    const parts = spec.name.split('.');
    // A nested option ('embedding.lr') needs its parent to be an object, or unset.
    let holder: Record<string, unknown> = source;
    for (let i = 0; i < parts.length - 1; i++) {
      const parent = parts.slice(0, i + 1).join('.');
      const value = holder[parts[i]];
      if (value !== undefined && !isPlainObject(value)) {
        const children = specs.filter((s) => s.name.startsWith(`${parent}.`)).map((s) => s.name.slice(parent.length + 1));
        throw invalidOption(nameOf(ctx, prefix + parent), `object { ${children.join(', ')} }`, value, prefix + parent);
      }
      holder = (value ?? {}) as Record<string, unknown>;
    }
    setPath(out, parts, resolveOption(group, spec, holder[parts[parts.length - 1]], ctx, prefix + spec.name));
  }
  return out;
}

type Resolved<T, Seeded extends keyof T = never> = Required<Omit<T, keyof JobOptions | Seeded>>;

export type ResolvedTextToImageOptions = Resolved<TextToImageOptions, 'seed'> & { seed: bigint };
export type ResolvedInvertOptions = Resolved<InvertOptions, 'seed' | 'width' | 'height'> & {
  seed: bigint;
  width: number | undefined;
  height: number | undefined;
};
/** A concept's `implicitMask` stays null when unset: the edit's applies. */
export type ResolvedConcept = Resolved<EditConcept, 'cooldown' | 'implicitMask'> & {
  cooldown: number | null;
  implicitMask: ImplicitMaskMode | null;
};
export type ResolvedEditOptions = Resolved<EditOptions, 'concepts' | 'userMask'> & {
  concepts: ResolvedConcept[];
  userMask: MaskInput | null;
};
export interface ResolvedImagicOptions {
  embedding: { steps: number; lr: number };
  finetune: { steps: number; lr: number; parameters: FinetuneParameters };
  seed: bigint;
  width: number | undefined;
  height: number | undefined;
  resize: ResizeMode;
}
export type ResolvedImagicGenerateOptions = Resolved<ImagicGenerateOptions, 'seed'> & { seed: bigint };
export type ResolvedImagicSweepOptions = Omit<ResolvedImagicGenerateOptions, 'eta'> & { etas: number[] };

export function validateTextToImageOptions(options: TextToImageOptions | undefined, ctx: ValidationContext): ResolvedTextToImageOptions {
  return resolveGroup('textToImage', options, ctx) as ResolvedTextToImageOptions;
}

/** With `scheduler: 'dpmsolver++'` the defaults are LEDITS++'s, and `eta` can only be 1. */
export function validateInvertOptions(options: InvertOptions | undefined, ctx: ValidationContext): ResolvedInvertOptions {
  const resolved = resolveGroup('invert', options, ctx) as ResolvedInvertOptions;
  if (resolved.scheduler === 'dpmsolver++' && resolved.eta !== 1) {
    throw invalidOption(nameOf(ctx, 'eta'), "1 with scheduler 'dpmsolver++' (its SDE fixes the noise)", resolved.eta, 'eta');
  }
  return resolved;
}

/** `ctx.limits.inversionSteps` bounds `skip` (and turns a fraction into a count); `ctx.scheduler` is the inversion's. */
export function validateEditOptions(options: EditOptions | undefined, ctx: ValidationContext): ResolvedEditOptions {
  return resolveGroup('edit', options, ctx) as ResolvedEditOptions;
}

export function validateImagicOptions(options: ImagicOptions | undefined, ctx: ValidationContext): ResolvedImagicOptions {
  return resolveGroup('imagic', options, ctx) as unknown as ResolvedImagicOptions;
}

export function validateImagicGenerateOptions(
  options: ImagicGenerateOptions | undefined,
  ctx: ValidationContext,
): ResolvedImagicGenerateOptions {
  return resolveGroup('imagicGenerate', options, ctx) as ResolvedImagicGenerateOptions;
}

/** The built-in criterion's settings, resolved; a caller's criterion function is kept as it is. */
export interface ResolvedImagicChooseEtaOptions {
  etas: number[];
  criterion: { fidelity: number; pairs: number } | ((...args: never[]) => unknown);
}

/** `result.chooseEta`'s own options (the grid and the criterion); the sampling options are the sweep's. */
export function validateImagicChooseEtaOptions(
  options: { etas?: number[]; criterion?: unknown } | undefined,
  ctx: ValidationContext,
): ResolvedImagicChooseEtaOptions {
  const criterion = options?.criterion;
  if (typeof criterion === 'function') {
    const { etas } = resolveGroup('imagicChooseEta', options, ctx, '', ['criterion.fidelity', 'criterion.pairs']) as { etas: number[] };
    return { etas, criterion: criterion as ResolvedImagicChooseEtaOptions['criterion'] };
  }
  if (criterion !== undefined && criterion !== null && !isPlainObject(criterion)) {
    throw invalidOption(nameOf(ctx, 'criterion'), 'function of a candidate image, or { fidelity, pairs }', criterion, 'criterion');
  }
  return resolveGroup('imagicChooseEta', options, ctx) as unknown as ResolvedImagicChooseEtaOptions;
}

/** `result.sweep`: a non-empty `etas` array, each checked as `eta` is. */
export function validateImagicSweepOptions(
  options: Omit<ImagicGenerateOptions, 'eta'> & { etas: number[] },
  ctx: ValidationContext,
): ResolvedImagicSweepOptions {
  if (!Array.isArray(options?.etas) || options.etas.length === 0) {
    throw new TorchEditError('ERR_INVALID_OPTION', `Expected a non-empty array of numbers for ${nameOf(ctx, 'etas')}`, { option: 'etas' });
  }
  const eta = optionSpec('imagicGenerate', 'eta');
  const etas = options.etas.map((value, i) => resolveOption('imagicGenerate', eta, value, ctx, `etas[${i}]`) as number);
  return { ...(resolveGroup('imagicGenerate', options, ctx, '', ['eta']) as Omit<ResolvedImagicGenerateOptions, 'eta'>), etas };
}
