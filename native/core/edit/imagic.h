// Imagic stage C: generate from ē = η·e_tgt + (1−η)·e_opt with the fine-tuned UNet
// (arXiv:2210.09276 §3.1, eq. (3)); η = 1 is the target text, η = 0 the optimised embedding.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "../pipelines/text_to_image.h"
#include "imagic_trainer.h"

namespace torchedit {

// No defaults here: every field is read from the options TypeScript fills in (lib/options/defaults.ts).
struct ImagicGenerateOptions {
  double eta;                   // η of eq. (3), not the sampler's
  TextToImageOptions sampling;  // the DDIM sampler's
};

torch::Tensor interpolateEmbedding(const ImagicState& state, double eta);

torch::Tensor imagicGenerate(StableDiffusion& model, const ImagicState& state, const torch::Tensor& unconditional,
                             const ImagicGenerateOptions& options, JobContext& job);

// The loss of imagicLoss with the bundle's UNet and its gradient with respect to `embedding`
// (for the gradient check against Python's autograd): {loss, ∂loss/∂e}.
std::pair<torch::Tensor, torch::Tensor> imagicLossGradient(StableDiffusion& model, const torch::Tensor& x0,
                                                           const torch::Tensor& embedding, int64_t t,
                                                           const torch::Tensor& noise);

// The loss of imagicLoss at e with the bundle's UNet whose `names` parameters are made trainable
// as stage B makes them (ScriptModule::withParameters), and its gradient with respect to each (for
// the gradient check against Python's autograd): {loss, [(name, ∂loss/∂θ)]}.
std::pair<torch::Tensor, std::vector<std::pair<std::string, torch::Tensor>>> imagicParameterGradients(
    StableDiffusion& model, const torch::Tensor& x0, const torch::Tensor& embedding, int64_t t,
    const torch::Tensor& noise, const std::vector<std::string>& names);

}  // namespace torchedit
