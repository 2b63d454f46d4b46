#include "imagic.h"

namespace torchedit {

torch::Tensor interpolateEmbedding(const ImagicState& state, double eta) {
  // Exact at the ends: η = 1 returns e_tgt itself, η = 0 e_opt itself (no rounding from a blend).
  if (eta == 1.0) return state.targetEmbedding;
  if (eta == 0.0) return state.optimizedEmbedding;
  return eta * state.targetEmbedding + (1.0 - eta) * state.optimizedEmbedding;
}

torch::Tensor imagicGenerate(StableDiffusion& model, const ImagicState& state, double eta,
                             const torch::Tensor& unconditional, const TextToImageOptions& options,
                             JobContext& job) {
  return textToImage(model, interpolateEmbedding(state, eta), unconditional, options, job, state.unet.get());
}

}  // namespace torchedit
