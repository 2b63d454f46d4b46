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
