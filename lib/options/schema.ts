/**
 * Every option of every pipeline, declared once: name, kind and range, library default, whether
 * model.json `recommended` may replace that default, doc text, and CLI flag. Everything else is
 * derived from these tables:
 *
 * - validation and defaults (lib/options/resolve.ts), which the pipelines call first and the CLI
 *   calls before it loads a model;
 * - the merged defaults of a model, `model.defaults` (lib/options/defaults.ts);
 * - the checks of model.json `recommended` (lib/model/config.ts);
 * - the CLI's flags and their `--help` (lib/cli/flags.ts);
 * - the option tables of docs/options.md and README.md (lib/options/docs.ts, `npm run docs:options`).
 *
 * The exported option interfaces (TextToImageOptions, …) keep hand-written doc comments; a test
 * checks that the defaults they state are the ones declared here.
 */

/** Bounds only the model or the inversion knows; a bound not known yet is not checked. */
export interface Limits {
  /** model.json `scheduler.numTrainTimesteps`: the most steps a schedule can take. */
  numTrainTimesteps?: number;
  /** Steps of the inversion an edit replays (an edit's `skip` must be below it). */
  inversionSteps?: number;
  /** Image sides must be multiples of this: 8 × vaeScaleFactor. */
  sizeMultiple?: number;
  /** The model's image side (sampleSize × vaeScaleFactor), the default width and height. */
  imageSize?: number;
}

/** A bound given by a limit, e.g. `{ limit: 'numTrainTimesteps' }`; `minus` is subtracted from it. */
export interface LimitBound {
  limit: 'numTrainTimesteps' | 'inversionSteps';
  minus?: number;
}

export type Bound = number | LimitBound;

export type Kind =
  | { type: 'integer'; min: number; max: Bound }
  | { type: 'number'; min: number; max: number; minExclusive?: boolean; maxExclusive?: boolean }
  /** Any string; `nonEmpty` rejects `''`. */
  | { type: 'string'; nonEmpty?: boolean }
  | { type: 'boolean' }
  | { type: 'enum'; values: readonly string[] }
  /** A non-negative safe integer or a bigint below 2^64; unset draws a random seed. */
  | { type: 'seed' }
  /** An image side in pixels: a positive integer, a multiple of `sizeMultiple`; unset is the model's size. */
  | { type: 'imageSide' }
  /** LEDITS skip: an integer count below the inversion's steps, or a fraction in (0, 1) of them. */
  | { type: 'skip' }
  /** A mask: an image (path, Buffer, Uint8Array or sharp instance) or a Tensor. */
  | { type: 'mask' }
  /** An array of objects, each validated by the group `of`. */
  | { type: 'list'; of: GroupName; item: string }
  /** One of `presets`, or a non-empty array of non-empty name patterns (CLI: comma-separated). */
  | { type: 'patterns'; presets: readonly string[] }
  /** A non-empty array of numbers, each in [min, max]. */
  | { type: 'numbers'; min: number; max: number };

export type Value = number | string | boolean;

export interface OptionSpec {
  /** Path in the options object: `'steps'`, or `'embedding.lr'` for a nested one. */
  readonly name: string;
  readonly kind: Kind;
  /**
   * The library's default. `null`: no value, `defaultText` says what happens (a random seed, the
   * model's size, never). `undefined` with `required`: the caller must give it.
   */
  readonly default: Value | readonly number[] | null | undefined;
  /**
   * The default when the inversion's `scheduler` is `'dpmsolver++'`: LEDITS++'s (arXiv:2311.16711,
   * diffusers' `LEditsPPPipelineStableDiffusion`). It replaces `default` and any model.json
   * recommendation, which are tuned for the DDPM inversion.
   */
  readonly dpmDefault?: Value;
  /** This option (the inversion's `scheduler`) chooses between `default` and `dpmDefault` for the others. */
  readonly selectsDefaults?: true;
  /** Shown for the default, in place of the value (with `null`) or after it. */
  readonly defaultText?: string;
  readonly required?: boolean;
  /**
   * model.json `recommended` may replace the default, under this key of the group (`true`: the
   * option's own name). The default is also `model.defaults[group][key]`.
   */
  readonly recommended?: true | string;
  /** One line for tables and --help (markdown backticks allowed). */
  readonly doc: string;
  /** The equivalent parameter of diffusers, for the docs. */
  readonly diffusers?: string;
  /** The CLI flag and its value placeholder; concept settings are `key=value` inside --concept. */
  readonly flag?: string;
  readonly value?: string;
  /** The flag may be given several times (values collected in order). */
  readonly repeatable?: boolean;
  /** Words the CLI flag takes besides a value, which the command gives a meaning (`--eta auto`). */
  readonly flagWords?: readonly string[];
}

export interface GroupSpec {
  /** The call the options belong to, for docs. */
  readonly call: string;
  /** The group's key in model.json `recommended` and in `model.defaults`. */
  readonly defaultsKey: DefaultsKey;
  readonly options: readonly OptionSpec[];
}

export type GroupName = 'textToImage' | 'invert' | 'edit' | 'concept' | 'imagic' | 'imagicGenerate' | 'imagicChooseEta';
export type DefaultsKey = 'textToImage' | 'inversion' | 'edit' | 'concept' | 'imagic' | 'imagicGenerate' | 'imagicChooseEta';

const TRAIN_STEPS: LimitBound = { limit: 'numTrainTimesteps' };

/** The samplers an inversion is made with and replayed by (docs/algorithms.md §1, §8). */
export const SCHEDULERS = ['ddpm', 'dpmsolver++'] as const;
export type Scheduler = (typeof SCHEDULERS)[number];
const CFG: Kind = { type: 'number', min: 0, max: 1000 };
const IMPLICIT_MASKS = ['off', 'attention', 'intersect'] as const;
const RESIZE: Kind = { type: 'enum', values: ['cover', 'contain', 'fill'] };
/** Imagic's `finetune.parameters` presets (lib/pipelines/imagic/parameters.ts says what each matches). */
export const FINETUNE_PRESETS = ['all', 'attention', 'cross-attention'] as const;

// Options several groups take, alike but for their default and doc text.

/** `width` or `height`: unset, the model's size. */
function imageSide(side: 'width' | 'height'): OptionSpec {
  return {
    name: side,
    kind: { type: 'imageSide' },
    default: null,
    defaultText: "the model's size",
    doc: `image ${side} in pixels`,
    flag: `--${side}`,
    value: '<px>',
  };
}
const width = imageSide('width');
const height = imageSide('height');

/** `steps` of a schedule, at most the model's training timesteps; model.json may recommend another count. */
function steps(byDefault: number, doc: string, diffusers?: string, dpmDefault?: number): OptionSpec {
  return {
    name: 'steps',
    kind: { type: 'integer', min: 1, max: TRAIN_STEPS },
    default: byDefault,
    ...(dpmDefault === undefined ? {} : { dpmDefault }),
    recommended: true,
    doc,
    diffusers,
    flag: '--steps',
    value: '<n>',
  };
}

/** `guidanceScale`, the classifier-free guidance scale of a prompt; model.json may recommend another. */
function guidanceScale(byDefault: number, doc: string, diffusers?: string): OptionSpec {
  return { name: 'guidanceScale', kind: CFG, default: byDefault, recommended: true, doc, diffusers, flag: '--guidance', value: '<scale>' };
}

/** `seed`: unset, a random seed; `defaultText` says whether the result reports it or the saved file records it. */
function seed(doc: string, defaultText: 'random, reported' | 'random, recorded', flag = '--seed'): OptionSpec {
  return { name: 'seed', kind: { type: 'seed' }, default: null, defaultText, doc, flag, value: '<n>' };
}

const resize: OptionSpec = {
  name: 'resize',
  kind: RESIZE,
  default: 'cover',
  doc: 'how the image is fitted: `cover` (center crop), `contain` (pad) or `fill` (stretch)',
  flag: '--resize',
  value: '<mode>',
};

export const optionSchema: Readonly<Record<GroupName, GroupSpec>> = {
  textToImage: {
    call: 'model.generate(prompt, options)',
    defaultsKey: 'textToImage',
    options: [
      {
        name: 'negativePrompt',
        kind: { type: 'string' },
        default: '',
        doc: 'what to steer away from: the unconditional prompt of classifier-free guidance',
        diffusers: 'negative_prompt',
        flag: '--negative',
        value: '<prompt>',
      },
      steps(50, 'DDIM denoising steps ("leading" spacing with the bundle\'s stepsOffset)', 'num_inference_steps'),
      guidanceScale(7.5, 'classifier-free guidance scale; ≤ 1 runs the conditional pass only', 'guidance_scale'),
      {
        name: 'eta',
        kind: { type: 'number', min: 0, max: 1 },
        default: 0,
        doc: "DDIM η: 0 is deterministic DDIM, 1 adds DDPM's posterior noise",
        diffusers: 'eta',
        flag: '--eta',
        value: '<eta>',
      },
      seed('seed of the initial noise (and η-noise): `torch.Generator().manual_seed(seed)` then `randn`', 'random, reported'),
      width,
      height,
      {
        name: 'batchSize',
        kind: { type: 'integer', min: 1, max: 64 },
        default: 1,
        doc: 'images per prompt (the CLI writes `<out>-1.png` …)',
        diffusers: 'num_images_per_prompt',
        flag: '--batch-size',
        value: '<n>',
      },
    ],
  },
  invert: {
    call: 'model.invert(image, options)',
    defaultsKey: 'inversion',
    options: [
      {
        name: 'scheduler',
        kind: { type: 'enum', values: SCHEDULERS },
        default: 'ddpm',
        selectsDefaults: true,
        doc: "the sampler inverted and replayed: `ddpm` (edit-friendly DDPM) or `dpmsolver++` (LEDITS++'s SDE-DPM-Solver++(2M), fewer steps); `dpmsolver++` also switches the defaults marked so to LEDITS++'s",
        flag: '--scheduler',
        value: '<name>',
      },
      {
        name: 'sourcePrompt',
        kind: { type: 'string' },
        default: '',
        doc: 'describes the input image; guides the inversion (s_src)',
        diffusers: 'source_prompt',
        flag: '--source-prompt',
        value: '<prompt>',
      },
      {
        name: 'sourceGuidanceScale',
        kind: CFG,
        default: 3.5,
        recommended: true,
        doc: 'CFG scale of the source prompt; no effect without one',
        diffusers: 'source_guidance_scale',
        flag: '--source-guidance',
        value: '<scale>',
      },
      steps(100, 'inversion steps T (an edit replays T − skip of them)', 'num_inversion_steps', 50),
      {
        name: 'skipNoisiest',
        kind: { type: 'number', min: 0, max: 1, maxExclusive: true },
        default: 0,
        dpmDefault: 0.15,
        doc: "LEDITS++'s skip, at inversion time: the schedule has int(steps·(1 + skipNoisiest)) steps and only its last `steps` are inverted (and all replayed); more = weaker edits, more fidelity",
        diffusers: 'skip (of invert)',
        flag: '--skip-noisiest',
        value: '<f>',
      },
      {
        name: 'eta',
        kind: { type: 'number', min: 0, max: 1, minExclusive: true },
        default: 1,
        doc: "η of the DDPM posterior; 1 is the method's choice (`dpmsolver++` takes only 1: its SDE fixes the noise)",
        flag: '--eta',
        value: '<eta>',
      },
      seed('seed of the independent noise draws; the same seed gives a bit-identical inversion', 'random, recorded'),
      width,
      height,
      resize,
    ],
  },
  edit: {
    call: 'inversion.edit(options)',
    defaultsKey: 'edit',
    options: [
      {
        name: 'targetPrompt',
        kind: { type: 'string' },
        default: '',
        defaultText: '(concepts only)',
        doc: 'describes the wanted image (CFG); omit for concepts-only edits',
        flag: '--target',
        value: '<prompt>',
      },
      guidanceScale(15, 'CFG scale of the target prompt'),
      {
        name: 'skip',
        kind: { type: 'skip' },
        default: 0.36,
        dpmDefault: 0,
        recommended: 'skipFraction',
        defaultText: "of the inversion's steps",
        doc: "inversion steps not replayed, at edit time: a count, or a fraction of the inversion's steps (unlike the inversion's `skipNoisiest`, the inversion keeps them); less skip = stronger edits, less fidelity",
        flag: '--skip',
        value: '<n>',
      },
      {
        name: 'concepts',
        kind: { type: 'list', of: 'concept', item: 'object with a prompt' },
        default: [],
        defaultText: 'none',
        doc: 'SEGA concepts, each added or removed (concept options below)',
        flag: '--concept',
        value: '<spec>',
        repeatable: true,
      },
      {
        name: 'momentumScale',
        kind: CFG,
        default: 0.3,
        dpmDefault: 0,
        doc: "momentum scale s_m of SEGA's guidance",
        diffusers: 'edit_momentum_scale',
        flag: '--momentum-scale',
        value: '<s>',
      },
      {
        name: 'momentumBeta',
        kind: { type: 'number', min: 0, max: 1, maxExclusive: true },
        default: 0.6,
        doc: "momentum β of SEGA's guidance",
        diffusers: 'edit_mom_beta',
        flag: '--momentum-beta',
        value: '<b>',
      },
      {
        name: 'maskMode',
        kind: { type: 'enum', values: ['channel', 'sum'] },
        default: 'channel',
        dpmDefault: 'sum',
        recommended: true,
        doc: 'how λ masks: `channel` (SEGA: quantile per channel) or `sum` (LEDITS++: over the channel-summed magnitude)',
        flag: '--mask-mode',
        value: '<mode>',
      },
      {
        name: 'implicitMask',
        kind: { type: 'enum', values: IMPLICIT_MASKS },
        default: 'off',
        recommended: true,
        doc: "LEDITS++'s implicit mask of each concept: `off` (the noise mask of `threshold` alone), `attention` (M¹: where the UNet's cross-attention to the concept's words is in its top 1 − `threshold`), `intersect` (M¹ ∩ the noise mask); the last two need a bundle with cross-attention maps",
        diffusers: 'use_cross_attn_mask, use_intersect_mask',
        flag: '--implicit-mask',
        value: '<mode>',
      },
      {
        name: 'userMask',
        kind: { type: 'mask' },
        default: null,
        defaultText: 'none',
        doc: 'where the edit may act: an image (white = editable; read like the input, resized to the latent size) or a `[h, w]` / `[1, 1, h, w]` tensor in [0, 1] at the latent size; outside it the result is the reconstruction',
        diffusers: 'user_mask',
        flag: '--user-mask',
        value: '<image>',
      },
      {
        name: 'returnMasks',
        kind: { type: 'boolean' },
        default: false,
        doc: "keep the mask each concept applied at each step in the result's `masks` (CLI: `--save-masks <dir>`)",
      },
    ],
  },
  concept: {
    call: 'a concept of inversion.edit({ concepts })',
    defaultsKey: 'concept',
    // CLI: --concept "+prompt:key=value,…"; `flag` is the setting's key there.
    options: [
      {
        name: 'prompt',
        kind: { type: 'string', nonEmpty: true },
        default: undefined,
        required: true,
        doc: 'what to add (or, with `remove`, take away), e.g. `blue` (CLI: the text after the sign)',
      },
      {
        name: 'scale',
        kind: CFG,
        default: 7,
        dpmDefault: 5,
        recommended: true,
        doc: 'guidance scale s_c',
        diffusers: 'edit_guidance_scale',
        flag: 'scale',
      },
      {
        name: 'remove',
        kind: { type: 'boolean' },
        default: false,
        doc: 'guide away from the concept instead of towards it (CLI: `-` before the prompt)',
        diffusers: 'reverse_editing_direction',
      },
      {
        name: 'warmup',
        kind: { type: 'integer', min: 0, max: 100000 },
        default: 2,
        dpmDefault: 0,
        recommended: true,
        doc: 'edit steps before the concept applies (counted from the first replayed step)',
        diffusers: 'edit_warmup_steps',
        flag: 'warmup',
      },
      {
        name: 'cooldown',
        kind: { type: 'integer', min: 0, max: 100000 },
        default: null,
        defaultText: 'never',
        doc: 'edit step from which the concept stops applying',
        diffusers: 'edit_cooldown_steps',
        flag: 'cooldown',
      },
      {
        name: 'threshold',
        kind: { type: 'number', min: 0, max: 1, maxExclusive: true },
        default: 0.95,
        dpmDefault: 0.9,
        recommended: true,
        doc: 'share λ of the guidance entries masked out (smallest first)',
        diffusers: 'edit_threshold',
        flag: 'threshold',
      },
      { name: 'weight', kind: CFG, default: 1, doc: 'relative weight w_c among concepts', diffusers: 'edit_weights', flag: 'weight' },
      {
        name: 'implicitMask',
        kind: { type: 'enum', values: IMPLICIT_MASKS },
        default: null,
        defaultText: "the edit's `implicitMask`",
        doc: "this concept's implicit mask: `off`, `attention` or `intersect` (see the edit option)",
        flag: 'mask',
      },
    ],
  },
  imagic: {
    call: 'model.imagic(image, targetPrompt, options)',
    defaultsKey: 'imagic',
    options: [
      {
        name: 'embedding.steps',
        kind: { type: 'integer', min: 1, max: 1_000_000 },
        default: 1000,
        recommended: true,
        doc: 'stage A, the text-embedding optimisation (UNet frozen): Adam steps',
        flag: '--embedding-steps',
        value: '<n>',
      },
      {
        name: 'embedding.lr',
        kind: { type: 'number', min: 0, max: 1, minExclusive: true },
        default: 2e-3,
        recommended: true,
        doc: 'stage A: Adam learning rate',
        flag: '--embedding-lr',
        value: '<lr>',
      },
      {
        name: 'finetune.steps',
        kind: { type: 'integer', min: 1, max: 1_000_000 },
        default: 1500,
        recommended: true,
        doc: 'stage B, the UNet fine-tune (embedding frozen): Adam steps',
        flag: '--finetune-steps',
        value: '<n>',
      },
      {
        name: 'finetune.lr',
        kind: { type: 'number', min: 0, max: 1, minExclusive: true },
        default: 5e-7,
        recommended: true,
        doc: 'stage B: Adam learning rate',
        flag: '--finetune-lr',
        value: '<lr>',
      },
      {
        name: 'finetune.parameters',
        kind: { type: 'patterns', presets: FINETUNE_PRESETS },
        default: 'all',
        doc: 'stage B: the UNet parameters trained, the rest shared with the loaded model: `all`, `attention` (attn1, attn2), `cross-attention` (attn2), or name patterns (a dotted part of the name such as `attn2.to_k`, or a glob with `*`)',
        flag: '--finetune-parameters',
        value: '<preset|patterns>',
      },
      seed('seed of the timestep and noise draws of both stages', 'random, recorded'),
      width,
      height,
      resize,
    ],
  },
  imagicGenerate: {
    call: 'result.generate(options), result.sweep({ etas, … })',
    defaultsKey: 'imagicGenerate',
    options: [
      {
        name: 'eta',
        kind: { type: 'number', min: -10, max: 10 },
        default: 0.7,
        recommended: true,
        doc: 'η of ē = η·e_tgt + (1−η)·e_opt: 1 is the target text, 0 the optimised embedding, > 1 extrapolates (CLI: several give one image each; `auto` chooses one with `result.chooseEta`)',
        diffusers: 'alpha (community pipeline)',
        flag: '--eta',
        value: '<η...|auto>',
        repeatable: true,
        flagWords: ['auto'],
      },
      steps(50, 'DDIM steps'),
      guidanceScale(7.5, 'classifier-free guidance scale (`""` as the unconditional prompt)'),
      seed("seed of the sampler's initial noise", 'random, reported', '--sample-seed'),
    ],
  },
  imagicChooseEta: {
    call: 'result.chooseEta(options)',
    defaultsKey: 'imagicChooseEta',
    options: [
      {
        name: 'etas',
        kind: { type: 'numbers', min: -10, max: 10 },
        default: [0.5, 0.6, 0.7, 0.8, 0.9, 1],
        recommended: true,
        doc: "the η grid chooseEta samples (one sweep, one seed) and scores; the CLI's `--eta auto` uses it too",
      },
      {
        name: 'criterion.fidelity',
        kind: { type: 'number', min: 0, max: 1000 },
        default: 0.5,
        doc: "built-in criterion: weight of the (normalised) distance to the input's latents against the (normalised) text gain",
      },
      {
        name: 'criterion.pairs',
        kind: { type: 'integer', min: 1, max: 1000 },
        default: 8,
        doc: 'built-in criterion: (t, ε) draws the denoising losses are averaged over',
      },
    ],
  },
};

export const groupNames = Object.keys(optionSchema) as GroupName[];

/** The option `name` of `group` (throws for a name the table lacks: a programming error). */
export function optionSpec(group: GroupName, name: string): OptionSpec {
  const spec = optionSchema[group].options.find((o) => o.name === name);
  if (!spec) throw new Error(`no option ${name} in ${group}`);
  return spec;
}

/** The option's key path in `model.defaults[group]` and model.json `recommended[group]`. */
export function defaultsPath(spec: OptionSpec): string[] {
  return typeof spec.recommended === 'string' ? spec.recommended.split('.') : spec.name.split('.');
}

/** Options with a value as default: those `model.defaults` holds. */
export function hasValueDefault(spec: OptionSpec): boolean {
  return spec.default !== null && spec.default !== undefined && !(Array.isArray(spec.default) && spec.default.length === 0);
}
