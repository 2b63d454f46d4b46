// Imagic stages A and B (Kawar et al., "Imagic: Text-Based Real Image Editing with Diffusion
// Models", arXiv:2210.09276 §3.1; docs/algorithms.md §4): optimise the text embedding with the UNet
// frozen, then fine-tune a copy of the UNet with that embedding frozen. Adam, no EMA, no clipping.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "../models/stable_diffusion.h"
#include "../runtime/job.h"

namespace torchedit {

// No defaults here: every field is read from the options TypeScript fills in (lib/options/defaults.ts).
struct ImagicStage {
  int64_t steps;
  double lr;
};

struct ImagicTrainOptions {
  ImagicStage embedding;  // A
  ImagicStage finetune;   // B
  // The UNet parameters stage B trains, by dotted name (lib/pipelines/imagic/parameters.ts
  // resolves the user's patterns); the others are shared with the loaded model and stay frozen.
  std::vector<std::string> finetuneParameters;
  uint64_t seed;
};

struct ImagicState {
  torch::Tensor targetEmbedding;     // e_tgt [1, L, D]
  torch::Tensor optimizedEmbedding;  // e_opt [1, L, D]
  // The fine-tuned UNet: its own copies of the trained parameters, the rest shared with the
  // model's UNet, which is untouched.
  std::shared_ptr<ScriptModule> unet;
  std::vector<float> embeddingLosses;
  std::vector<float> finetuneLosses;
};

// The diffusion loss mean‖ε − ε_θ(x_t, t, e)‖² with x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε, evaluated with
// autograd on. Both stages minimise it; `unet` null means the bundle's UNet.
torch::Tensor imagicLoss(StableDiffusion& model, ScriptModule* unet, const torch::Tensor& x0,
                         const torch::Tensor& embedding, int64_t t, const torch::Tensor& noise);

ImagicState trainImagic(StableDiffusion& model, const torch::Tensor& x0, const torch::Tensor& targetEmbedding,
                        const ImagicTrainOptions& options, JobContext& job);

}  // namespace torchedit
