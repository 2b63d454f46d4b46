// LEDITS++ implicit masks (Brack et al., "LEDITS++: Limitless Image Editing using Text-to-Image
// Models", CVPR 2024, arXiv:2311.16711 §3.3; docs/algorithms.md §7): where a concept's guidance
// may act, from the UNet's cross-attention (M¹) and from the guidance's own magnitude (M²).
#pragma once

#include <torch/types.h>

namespace torchedit {

// Per concept: 'off' is SEGA's noise mask M² alone (today's LEDITS); 'attention' is M¹ alone;
// 'intersect' is M¹ ∩ M² (M¹ alone in the noisiest 20% of timesteps, as diffusers does).
enum class ImplicitMask { Off, Attention, Intersect };

// M¹ of one concept: `maps` [L, a, b] are the cross-attention maps of the concept's own UNet branch;
// the concept's tokens are positions [1, 1 + tokenCount) (after BOS: not BOS, EOS or padding).
// Their maps are summed, smoothed by a 3×3 Gaussian (σ = 0.5, reflect padding: diffusers'
// LeditsGaussianSmoothing), thresholded at the λ-quantile (≥ keeps), and upsampled to the latent
// size h × w by nearest neighbour. Returns {0, 1} float32 [1, 1, h, w].
torch::Tensor attentionMask(const torch::Tensor& maps, int64_t tokenCount, double threshold, int64_t h, int64_t w);

// The 3×3 Gaussian kernel above, [1, 1, 3, 3], normalised to sum 1.
torch::Tensor smoothingKernel();

}  // namespace torchedit
