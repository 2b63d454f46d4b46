#include "implicit_mask.h"

#include <cmath>

#include "../runtime/error.h"

namespace torchedit {

torch::Tensor smoothingKernel() {
  // diffusers' LeditsGaussianSmoothing: exp(−((x − μ)/(2σ))²) per axis (its spelling of the
  // Gaussian, kept for parity), the outer product normalised to sum 1.
  const double sigma = 0.5, mean = 1.0;
  torch::Tensor x = torch::arange(3, torch::kFloat);
  torch::Tensor g = torch::exp(-((x - mean) / (2 * sigma)).pow(2)) / (sigma * std::sqrt(2 * M_PI));
  torch::Tensor kernel = torch::outer(g, g);
  return (kernel / kernel.sum()).view({1, 1, 3, 3});
}

torch::Tensor attentionMask(const torch::Tensor& maps, int64_t tokenCount, double threshold, int64_t h, int64_t w) {
  if (maps.dim() != 3 || tokenCount < 1 || 1 + tokenCount > maps.size(0)) {
    throw Error(code::kShape, "Cross-attention maps " + c10::str(maps.sizes()) + " do not hold a concept of " +
                                  std::to_string(tokenCount) + " tokens");
  }
  // Σ over the concept's tokens, then smoothing at the maps' resolution (reflect-padded 3×3).
  torch::Tensor map = maps.narrow(0, 1, tokenCount).to(torch::kFloat).sum(0).unsqueeze(0).unsqueeze(0);
  map = torch::reflection_pad2d(map, {1, 1, 1, 1});
  map = torch::conv2d(map, smoothingKernel().to(map.device()));
  // Keep what reaches the λ-quantile over the map's pixels (torch's linear interpolation).
  torch::Tensor q = torch::quantile(map.flatten(), threshold);
  torch::Tensor mask = (map >= q).to(torch::kFloat);
  return torch::upsample_nearest2d(mask, {h, w});
}

}  // namespace torchedit
