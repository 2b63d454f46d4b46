/**
 * The defaults in force for a model: the library's (declared in lib/options/schema.ts, nowhere
 * else), replaced by what the model's model.json `recommended` says, and an option the caller
 * passes still wins. The library's defaults are Stable Diffusion's; a small model such as the
 * shipped shapes-64 edits best with other values (eval/RESULTS.md).
 *
 * The two interfaces below only name and type the fields; a test checks them against the schema.
 */
import type { ResizeMode } from '../image/read.js';
import type { FinetuneParameters } from '../pipelines/imagic/train.js';
import type { ImplicitMaskMode } from '../pipelines/ledits/edit.js';
import { defaultsPath, groupNames, hasValueDefault, optionSchema, type DefaultsKey, type OptionSpec, type Scheduler } from './schema.js';

/** Every option default of a model (`model.defaults`), grouped as model.json `recommended` is. */
export interface ModelDefaults {
  textToImage: { negativePrompt: string; steps: number; guidanceScale: number; eta: number; batchSize: number };
  /** With `scheduler: 'dpmsolver++'` the options that have one take LEDITS++'s default instead (lib/options/schema.ts `dpmDefault`). */
  inversion: {
    scheduler: Scheduler;
    sourcePrompt: string;
    sourceGuidanceScale: number;
    steps: number;
    skipNoisiest: number;
    eta: number;
    resize: ResizeMode;
  };
  /** `skipFraction`: the default `skip`, a fraction of the inversion's steps. */
  edit: {
    targetPrompt: string;
    guidanceScale: number;
    skipFraction: number;
    momentumScale: number;
    momentumBeta: number;
    maskMode: 'channel' | 'sum';
    implicitMask: ImplicitMaskMode;
    returnMasks: boolean;
  };
  concept: { scale: number; remove: boolean; warmup: number; threshold: number; weight: number };
  imagic: {
    embedding: { steps: number; lr: number };
    finetune: { steps: number; lr: number; parameters: FinetuneParameters };
    resize: ResizeMode;
  };
  imagicGenerate: { eta: number; steps: number; guidanceScale: number };
  /** `result.chooseEta`: the η grid and the built-in criterion's settings. */
  imagicChooseEta: { etas: number[]; criterion: { fidelity: number; pairs: number } };
}

/**
 * Settings a bundle recommends for itself (model.json `recommended`, docs/bundle-format.md): they replace the
 * library's defaults for that model. Every group and field is optional; each value is checked at
 * load like the option it stands for.
 */
export interface RecommendedSettings {
  textToImage?: { steps?: number; guidanceScale?: number };
  inversion?: { steps?: number; sourceGuidanceScale?: number };
  /** `skipFraction` is a fraction of the inversion's steps in (0, 1). */
  edit?: { guidanceScale?: number; skipFraction?: number; maskMode?: 'channel' | 'sum'; implicitMask?: ImplicitMaskMode };
  concept?: { scale?: number; warmup?: number; threshold?: number };
  imagic?: { embedding?: { steps?: number; lr?: number }; finetune?: { steps?: number; lr?: number } };
  imagicGenerate?: { eta?: number; steps?: number; guidanceScale?: number };
  imagicChooseEta?: { etas?: number[] };
}

type Tree = Record<string, unknown>;

export function getPath(tree: unknown, path: readonly string[]): unknown {
  let node = tree;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Tree)[key];
  }
  return node;
}

export function setPath(tree: Tree, path: readonly string[], value: unknown): void {
  let node = tree;
  for (const key of path.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Tree;
  }
  node[path[path.length - 1]] = value;
}

function freeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) freeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Each option of the schema with a value default, with its group's key. */
function* defaultedOptions(): Generator<[DefaultsKey, OptionSpec]> {
  for (const group of groupNames) {
    for (const spec of optionSchema[group].options) if (hasValueDefault(spec)) yield [optionSchema[group].defaultsKey, spec];
  }
}

/** The defaults in force for a model: the library's, each replaced where its bundle recommends another value. */
export function defaultsFor(recommended: RecommendedSettings | undefined): ModelDefaults {
  const out: Tree = {};
  for (const [key, spec] of defaultedOptions()) {
    const path = defaultsPath(spec);
    const chosen = getPath(recommended?.[key], path);
    setPath(out, [key, ...path], spec.recommended && chosen !== undefined ? chosen : spec.default);
  }
  return out as unknown as ModelDefaults;
}

/** The library's own defaults (no model's recommendations). */
export const libraryDefaults: ModelDefaults = freeze(defaultsFor(undefined));

export const textToImageDefaults = libraryDefaults.textToImage;
export const inversionDefaults = libraryDefaults.inversion;
export const editDefaults = libraryDefaults.edit;
export const conceptDefaults = libraryDefaults.concept;
export const imagicDefaults = libraryDefaults.imagic;
export const imagicGenerateDefaults = libraryDefaults.imagicGenerate;
export const imagicChooseEtaDefaults = libraryDefaults.imagicChooseEta;
