// LEDITS (Tsaban & Passos, "LEDITS: Real Image Editing with DDPM Inversion and Semantic
// Guidance", arXiv:2307.00522): replay an edit-friendly inversion's noise maps while guiding
// with a target prompt and/or SEGA concepts (docs/algorithms.md §3).
#pragma once

#include <torch/types.h>

#include "../models/stable_diffusion.h"
#include "../runtime/job.h"
#include "ddpm_inversion.h"
#include "semantic_guidance.h"

namespace torchedit {

// No defaults here: every field is read from the options TypeScript fills in (lib/options/defaults.ts).
struct EditOptions {
  SamplerOptions sampler;  // of the inversion: the replay makes its steps
  int64_t skip;            // inversion steps not replayed: the edit starts at xts[skip]
  double guidanceScale;    // s_tar, for the target prompt
  SemanticGuidanceOptions guidance;
  bool returnMasks;  // keep the mask each concept applied at each step
};

// The edited latents x_0 [1, C, h, w]; with returnMasks, the masks each concept applied at each
// replayed step, averaged over latent channels: [T − skip, concepts, h, w] in [0, 1].
struct EditResult {
  torch::Tensor latents;
  torch::Tensor masks;
};

// `target` [1, L, D] or undefined (concepts only); `concepts` [C, L, D] or undefined, with one
// EditConcept each. `userMask` [1, 1, h, w] in [0, 1] (1 = editable) or undefined: the guidance
// acts only inside it and every step blends back to the inversion's trajectory outside it
// (needs `inversion.x0`). Reads the inversion, never writes it. Throws ERR_SHAPE if the
// inversion's tensors, skip, the concepts or the mask do not fit, ERR_NO_ATTENTION_MAPS if a
// concept asks for a cross-attention mask and the bundle's UNet gives no maps.
EditResult ledits(StableDiffusion& model, const Inversion& inversion, const torch::Tensor& unconditional,
                  const torch::Tensor& target, const torch::Tensor& concepts, const torch::Tensor& userMask,
                  const EditOptions& options, JobContext& job);

}  // namespace torchedit
