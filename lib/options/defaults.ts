/** Every default value of the public options, defined once (doc comments in the option types repeat them). */
export const textToImageDefaults = {
  negativePrompt: '',
  steps: 50,
  guidanceScale: 7.5,
  eta: 0,
} as const;
