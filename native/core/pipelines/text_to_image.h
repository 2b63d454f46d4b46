// Text-to-image: DDIM sampling with classifier-free guidance, the whole loop in one job.
#pragma once

#include <torch/types.h>

#include "../models/stable_diffusion.h"
#include "../runtime/job.h"

namespace torchedit {

// No defaults here: every field is read from the options TypeScript fills in (lib/options/defaults.ts).
struct TextToImageOptions {
  int64_t steps;
  double guidanceScale;  // ≤ 1 runs the conditional pass only
  double eta;            // DDIM η: 0 deterministic, 1 DDPM-like
  uint64_t seed;
  int64_t latentHeight;
  int64_t latentWidth;
};

// `context` [B, L, D] prompt states; `unconditional` [1 or B, L, D] (the negative prompt).
// `unet`, when given, replaces the bundle's UNet (Imagic's fine-tuned copy).
// Returns the final latents [B, C, h, w] (scaled, as the VAE decoder's caller expects).
torch::Tensor textToImage(StableDiffusion& model, const torch::Tensor& context, const torch::Tensor& unconditional,
                          const TextToImageOptions& options, JobContext& job, ScriptModule* unet = nullptr);

}  // namespace torchedit
