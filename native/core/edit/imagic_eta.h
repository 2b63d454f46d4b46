// Imagic's automatic η (issue 21; the paper, arXiv:2210.09276 §4.3, leaves η per image to the
// user): each image generated over a grid of η is scored with the fine-tuned UNet itself.
#pragma once

#include "imagic_trainer.h"

namespace torchedit {

// No defaults here: every field is read from the options TypeScript fills in (lib/options/defaults.ts).
struct ImagicEtaScoreOptions {
  int64_t pairs;  // (t, ε) draws, the same for every candidate
  uint64_t seed;  // of those draws
};

// For each candidate latents z_i ([N, C, h, w]): [gain_i, distance_i] ([N, 2]), where
//   gain_i     = 1/K Σ_k ( L(z_i, e_opt; t_k, ε_k) − L(z_i, e_tgt; t_k, ε_k) ),
// L the denoising loss of imagicLoss under the fine-tuned UNet: how much better the target text
// explains the image than the embedding fitted to the input does (> 0: the edit shows); and
//   distance_i = mean((z_i − x0)²), how far it moved from the input's latents.
torch::Tensor imagicEtaScores(StableDiffusion& model, const ImagicState& state, const torch::Tensor& candidates,
                              const torch::Tensor& x0, const ImagicEtaScoreOptions& options, JobContext& job);

}  // namespace torchedit
