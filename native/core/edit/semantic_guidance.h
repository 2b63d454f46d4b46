// SEGA semantic guidance (Brack et al., "SEGA: Instructing Text-to-Image Models using Semantic
// Guidance", arXiv:2301.12247; docs/algorithms.md §2), with the recursion of diffusers'
// SemanticStableDiffusionPipeline and LEDITS++'s channel-sum mask as an option.
#pragma once

#include <torch/types.h>

#include <optional>
#include <vector>

#include "implicit_mask.h"

namespace torchedit {

// No defaults here: every field is read from the options TypeScript fills in (lib/options/defaults.ts).
struct EditConcept {
  double scale;                     // s_c
  bool remove;                      // d_c = −1: guide away from the concept
  int64_t warmup;                   // edit steps before the concept applies
  std::optional<int64_t> cooldown;  // edit step from which it stops; none = never
  double threshold;                 // λ_c: share of |ψ_c| masked out, in [0, 1)
  double weight;                    // w_c
  ImplicitMask implicitMask;        // where ψ_c may act (LEDITS++ §3.3)
  int64_t tokenCount;               // the concept prompt's tokens (without BOS/EOS), for M¹
};

enum class MaskMode { Channel, Sum };

struct SemanticGuidanceOptions {
  std::vector<EditConcept> concepts;
  double momentumScale;  // s_m
  double momentumBeta;   // β
  MaskMode maskMode;
};

// The inputs of one step's masks beyond the ε's.
struct GuidanceMasks {
  std::vector<torch::Tensor> attention;  // per concept: M¹ [1, 1, h, w], undefined when not used
  torch::Tensor user;                    // the user's mask [1, 1, h, w] in [0, 1]; undefined = none
  bool noiseMaskActive = true;           // 'intersect' uses M² only while t ≤ 0.8·T
};

class SemanticGuidance {
 public:
  explicit SemanticGuidance(SemanticGuidanceOptions options);

  // The guidance to add to ε̃ at edit step i, given ε_∅ [B,C,h,w] and the concepts' ε [C, B,C,h,w].
  // Updates the momentum ν, so call it once per step, in order.
  torch::Tensor step(int64_t i, const torch::Tensor& epsUnconditional, const torch::Tensor& epsConcepts,
                     const GuidanceMasks& masks = {});

  // Per concept, the mask the last step() applied to ψ_c, averaged over latent channels:
  // [C, h, w] in [0, 1]; zeros for a concept that did not apply (warm-up, cooldown).
  torch::Tensor appliedMasks() const { return applied_; }

  // M²: {0, 1} where |ψ_c| reaches its λ-quantile (exposed for tests of the mask alone).
  static torch::Tensor noiseMask(const torch::Tensor& psi, double threshold, MaskMode mode);

 private:
  SemanticGuidanceOptions options_;
  torch::Tensor momentum_;
  torch::Tensor applied_;
};

// step() for i = 0 … steps−1 with the same ε's (for tests of the recursion alone).
std::vector<torch::Tensor> semanticGuidanceSteps(const SemanticGuidanceOptions& options,
                                                 const torch::Tensor& epsUnconditional,
                                                 const torch::Tensor& epsConcepts, int64_t steps);

}  // namespace torchedit
