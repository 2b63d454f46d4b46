#include "semantic_guidance.h"

#include "../runtime/error.h"

namespace torchedit {

SemanticGuidance::SemanticGuidance(SemanticGuidanceOptions options) : options_(std::move(options)) {}

torch::Tensor SemanticGuidance::noiseMask(const torch::Tensor& psi, double threshold, MaskMode mode) {
  // Keep the entries whose magnitude reaches the λ-quantile over H·W (torch's linear
  // interpolation, ≥): SEGA per sample and channel; LEDITS++ on the channel-summed magnitude.
  torch::Tensor magnitude = psi.abs();
  if (mode == MaskMode::Sum) magnitude = magnitude.sum(1, true).expand_as(psi);
  torch::Tensor q = torch::quantile(magnitude.flatten(2).to(torch::kFloat), threshold, 2, false);
  return (magnitude >= q.unsqueeze(-1).unsqueeze(-1)).to(psi.scalar_type());
}

torch::Tensor SemanticGuidance::step(int64_t i, const torch::Tensor& epsUnconditional, const torch::Tensor& epsConcepts,
                                     const GuidanceMasks& masks) {
  const auto& concepts = options_.concepts;
  const int64_t count = static_cast<int64_t>(concepts.size());
  if (!momentum_.defined()) momentum_ = torch::zeros_like(epsUnconditional);
  torch::Tensor guidance = torch::zeros_like(epsUnconditional);
  applied_ = torch::zeros({count, epsUnconditional.size(2), epsUnconditional.size(3)}, epsUnconditional.options());
  if (count == 0) return guidance;

  std::vector<torch::Tensor> terms(count);
  std::vector<double> weights(count, 0.0);
  std::vector<int64_t> warmedUp;
  for (int64_t c = 0; c < count; ++c) {
    const EditConcept& concept = concepts[c];
    if (i >= concept.warmup) warmedUp.push_back(c);
    if (concept.cooldown && i >= *concept.cooldown) {
      terms[c] = torch::zeros_like(epsUnconditional);  // cooled down: no term, weight 0
      continue;
    }
    // ψ_c = s_c·d_c·(ε_c − ε_∅), eq. (6) of 2301.12247, restricted to the user's mask, then masked:
    // by M² (λ_c, eq. (7); LEDITS++ eq. (9)), M¹ (LEDITS++ eq. (8)) or M¹ ∩ M² (eq. (10)).
    torch::Tensor psi = (epsConcepts[c] - epsUnconditional) * (concept.remove ? -concept.scale : concept.scale);
    if (masks.user.defined()) psi = psi * masks.user;
    torch::Tensor mask;
    if (concept.implicitMask == ImplicitMask::Off) {
      mask = noiseMask(psi, concept.threshold, options_.maskMode);
    } else {
      if (c >= static_cast<int64_t>(masks.attention.size()) || !masks.attention[c].defined()) {
        throw Error(code::kInternal, "No cross-attention mask was given for concept " + std::to_string(c));
      }
      mask = masks.attention[c].expand_as(psi);
      if (concept.implicitMask == ImplicitMask::Intersect && masks.noiseMaskActive) {
        mask = mask * noiseMask(psi, concept.threshold, options_.maskMode);
      }
    }
    terms[c] = torch::where(mask > 0, psi, torch::zeros_like(psi));
    torch::Tensor shown = masks.user.defined() ? mask * masks.user : mask;
    if (i >= concept.warmup) applied_[c] = shown.mean(1)[0];  // what acts on the image, not on ν alone
    weights[c] = std::max(concept.weight, 0.0);
  }
  const int64_t warm = static_cast<int64_t>(warmedUp.size());
  if (warm > 0 && warm < count) {
    // Some concepts still warming up: the warmed-up ones apply with normalised weights and
    // without momentum (diffusers' recursion). A zero weight sum adds nothing (diffusers: NaN).
    double sum = 0.0;
    for (int64_t c : warmedUp) sum += weights[c];
    if (sum > 0) {
      for (int64_t c : warmedUp) guidance = guidance + (weights[c] / sum) * terms[c];
    }
  }
  // G = Σ_c w_c·ψ_c + s_m·ν, then ν ← β·ν + (1−β)·G (eq. (8)); ν accumulates during warm-up
  // too, and G applies once every concept is warmed up.
  torch::Tensor edit = torch::zeros_like(epsUnconditional);
  for (int64_t c = 0; c < count; ++c) {
    if (weights[c] != 0.0) edit = edit + weights[c] * terms[c];
  }
  edit = edit + options_.momentumScale * momentum_;
  momentum_ = options_.momentumBeta * momentum_ + (1.0 - options_.momentumBeta) * edit;
  if (warm == count) guidance = guidance + edit;
  return guidance;
}

std::vector<torch::Tensor> semanticGuidanceSteps(const SemanticGuidanceOptions& options,
                                                 const torch::Tensor& epsUnconditional,
                                                 const torch::Tensor& epsConcepts, int64_t steps) {
  SemanticGuidance guidance(options);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < steps; ++i) out.push_back(guidance.step(i, epsUnconditional, epsConcepts));
  return out;
}

}  // namespace torchedit
