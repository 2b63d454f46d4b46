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
};

// `target` [1, L, D] or undefined (concepts only); `concepts` [C, L, D] or undefined, with one
// EditConcept each. Returns the edited latents x_0 [1, C, h, w]. Reads the inversion, never
// writes it. Throws ERR_SHAPE if the inversion's tensors, skip or the concepts do not fit.
torch::Tensor ledits(StableDiffusion& model, const Inversion& inversion, const torch::Tensor& unconditional,
                     const torch::Tensor& target, const torch::Tensor& concepts, const EditOptions& options,
                     JobContext& job);

}  // namespace torchedit
