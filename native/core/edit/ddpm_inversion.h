// Edit-friendly inversion (Huberman-Spiegelglas, Kulikov, Michaeli, "An Edit Friendly DDPM Noise
// Space", arXiv:2304.06140; docs/algorithms.md §1), with the DDPM step or, as LEDITS++ (Brack et
// al., arXiv:2311.16711) does, SDE-DPM-Solver++(2M) (§8): the loop is the same, the step comes
// from schedulers/stepper.h.
#pragma once

#include <torch/types.h>

#include "../models/stable_diffusion.h"
#include "../runtime/job.h"
#include "../schedulers/stepper.h"

namespace torchedit {

// No defaults here: every field is read from the options TypeScript fills in (lib/options/defaults.ts).
struct InversionOptions {
  SamplerOptions sampler;      // DDPM's eta must be > 0: σ_t = 0 leaves z_t undefined
  double sourceGuidanceScale;  // s_src; unused when there is no source prompt
  uint64_t seed;
};

// Tensors in sampling order (largest t first), over the N inverted timesteps: timesteps [T]; xts [T, B, C, h, w],
// xts[k] the latent at timesteps[k]; zs [T, B, C, h, w], zs[k] the noise of the step leaving timesteps[k] (zs[T−1] is
// z_1, kept: zeroing it, as the authors' repository does, loses exact reconstruction).
struct Inversion {
  torch::Tensor x0;  // the input's latents [B, C, h, w]: where the replay ends without an edit
  torch::Tensor timesteps;
  torch::Tensor xts;
  torch::Tensor zs;
};

// ε̂ with the source prompt: ε(x, t, ∅) + s_src·(ε(x, t, c_src) − ε(x, t, ∅)), one batched
// UNet call; the unconditional term alone when `source` is undefined.
torch::Tensor sourceNoise(StableDiffusion& model, const torch::Tensor& x, int64_t t, const torch::Tensor& unconditional,
                          const torch::Tensor& source, double sourceGuidanceScale);

Inversion invert(StableDiffusion& model, const torch::Tensor& x0, const torch::Tensor& unconditional,
                 const torch::Tensor& source, const InversionOptions& options, JobContext& job);

}  // namespace torchedit
