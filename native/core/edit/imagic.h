// Imagic stage C: generate from ē = η·e_tgt + (1−η)·e_opt with the fine-tuned UNet
// (arXiv:2210.09276 §3.1, eq. (3)); η = 1 is the target text, η = 0 the optimised embedding.
#pragma once

#include "../pipelines/text_to_image.h"
#include "imagic_trainer.h"

namespace torchedit {

torch::Tensor interpolateEmbedding(const ImagicState& state, double eta);

torch::Tensor imagicGenerate(StableDiffusion& model, const ImagicState& state, double eta,
                             const torch::Tensor& unconditional, const TextToImageOptions& options,
                             JobContext& job);

}  // namespace torchedit
