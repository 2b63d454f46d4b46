/** Every default value of the public options, defined once (doc comments in the option types repeat them). */
export const textToImageDefaults = {
  negativePrompt: '',
  steps: 50,
  guidanceScale: 7.5,
  eta: 0,
} as const;

/** LEDITS inversion (demo defaults of Tsaban & Passos; ALGORITHMS.md §3). */
export const inversionDefaults = {
  sourcePrompt: '',
  sourceGuidanceScale: 3.5,
  steps: 100,
  eta: 1,
} as const;

/** LEDITS edit: target-prompt CFG and where the replay starts. */
export const editDefaults = {
  guidanceScale: 15,
  /** Share of the inversion's steps not replayed: 36 of 100 (DDPM-inversion demo). */
  skipFraction: 0.36,
  momentumScale: 0.3,
  momentumBeta: 0.6,
  maskMode: 'channel',
} as const;

/** One SEGA concept (LEDITS demo values, tuned for DDPM-inversion edits; SEGA's own are 5, 10, 0.9). */
export const conceptDefaults = {
  scale: 7,
  remove: false,
  warmup: 2,
  threshold: 0.95,
  weight: 1,
} as const;

/** Imagic (paper's Stable Diffusion settings, arXiv:2210.09276 §4; ALGORITHMS.md §4). */
export const imagicDefaults = {
  embedding: { steps: 1000, lr: 2e-3 },
  finetune: { steps: 1500, lr: 5e-7 },
} as const;

/** Imagic stage C sampling. */
export const imagicGenerateDefaults = {
  eta: 0.7,
  steps: 50,
  guidanceScale: 7.5,
} as const;

/**
 * Settings a bundle recommends for itself (model.json `recommended`, BUNDLE.md): they replace the
 * library's defaults above for that model, and an option the caller passes still wins. The
 * library's defaults are Stable Diffusion's; a small model such as the shipped shapes-64 edits
 * best with other values (eval/RESULTS.md).
 */
export interface RecommendedSettings {
  textToImage?: { steps?: number; guidanceScale?: number };
  inversion?: { steps?: number; sourceGuidanceScale?: number };
  /** `skip` here is a fraction of the inversion's steps in (0, 1). */
  edit?: { guidanceScale?: number; skipFraction?: number; maskMode?: 'channel' | 'sum' };
  concept?: { scale?: number; warmup?: number; threshold?: number };
  imagic?: { embedding?: { steps: number; lr: number }; finetune?: { steps: number; lr: number } };
  imagicGenerate?: { eta?: number; steps?: number; guidanceScale?: number };
}

/** The defaults in force for a model: the library's, overridden by what its bundle recommends. */
export function defaultsFor(recommended: RecommendedSettings | undefined) {
  const r = recommended ?? {};
  return {
    textToImage: { ...textToImageDefaults, ...r.textToImage },
    inversion: { ...inversionDefaults, ...r.inversion },
    edit: { ...editDefaults, ...r.edit },
    concept: { ...conceptDefaults, ...r.concept },
    imagic: { ...imagicDefaults, ...r.imagic },
    imagicGenerate: { ...imagicGenerateDefaults, ...r.imagicGenerate },
  };
}

export type ModelDefaults = ReturnType<typeof defaultsFor>;
