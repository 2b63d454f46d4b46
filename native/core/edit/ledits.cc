#include "ledits.h"

#include "../schedulers/stepper.h"

namespace torchedit {

namespace {

// The inversion's sampler, ready to replay from step `skip` (docs/algorithms.md §3, §7).
std::unique_ptr<Stepper> replayStepper(StableDiffusion& model, const Inversion& inversion, const EditOptions& options) {
  std::unique_ptr<Stepper> stepper = makeStepper(model.config().scheduler, options.sampler);
  torch::Tensor timesteps = inversion.timesteps.to(torch::kCPU, torch::kLong).contiguous();
  if (stepper->timesteps() !=
      std::vector<int64_t>(timesteps.data_ptr<int64_t>(), timesteps.data_ptr<int64_t>() + timesteps.numel())) {
    throw Error(code::kShape, "The inversion's timesteps are not those its scheduler settings make");
  }
  stepper->resume(options.skip, inversion.xts, inversion.zs);
  return stepper;
}

}  // namespace

torch::Tensor ledits(StableDiffusion& model, const Inversion& inversion, const torch::Tensor& unconditional,
                     const torch::Tensor& target, const torch::Tensor& concepts, const EditOptions& options,
                     JobContext& job) {
  const int64_t T = inversion.timesteps.numel();
  if (inversion.xts.dim() != 5 || inversion.zs.sizes() != inversion.xts.sizes() || inversion.xts.size(0) != T ||
      options.skip < 0 || options.skip >= T) {
    throw Error(code::kShape,
                "The inversion's tensors do not fit together (timesteps, xts, zs) or skip is out of range");
  }
  if (concepts.defined() && static_cast<size_t>(concepts.size(0)) != options.guidance.concepts.size()) {
    throw Error(code::kShape, "One set of concept options is needed per concept embedding");
  }
  torch::NoGradGuard noGrad;
  std::unique_ptr<Stepper> stepper = replayStepper(model, inversion, options);
  SemanticGuidance guidance(options.guidance);
  const auto device = model.device();
  const int64_t conceptCount = concepts.defined() ? concepts.size(0) : 0;
  auto timesteps = inversion.timesteps.to(torch::kCPU);

  // One UNet batch per step: [∅, target?, concept_1..concept_C] (not C+2 calls).
  std::vector<torch::Tensor> states{unconditional.to(device)};
  if (target.defined()) states.push_back(target.to(device));
  if (conceptCount > 0) states.push_back(concepts.to(device));
  torch::Tensor context = torch::cat(states);
  const int64_t batch = context.size(0);

  torch::Tensor x = inversion.xts[options.skip].to(device).clone();
  for (int64_t k = options.skip; k < T; ++k) {
    job.check();
    const int64_t t = timesteps[k].item<int64_t>();
    const int64_t i = k - options.skip;  // edit-step counter for warm-up and cooldown
    torch::Tensor eps = model.predictNoise(x.repeat({batch, 1, 1, 1}), t, context);
    torch::Tensor epsUncond = eps.narrow(0, 0, 1);
    torch::Tensor noiseGuidance = torch::zeros_like(epsUncond);
    if (target.defined()) noiseGuidance = options.guidanceScale * (eps.narrow(0, 1, 1) - epsUncond);
    if (conceptCount > 0) {
      torch::Tensor epsConcepts = eps.narrow(0, batch - conceptCount, conceptCount).unsqueeze(1);
      noiseGuidance = noiseGuidance + guidance.step(i, epsUncond, epsConcepts);
    }
    // x_{t−1} = μ_t(x_t, ε̃) + σ_t·z_t with the inversion's z_t (arXiv:2304.06140 §4)
    x = stepper->step(k, x, epsUncond + noiseGuidance, inversion.zs[k].to(device));
    job.progress(Progress{"edit", k - options.skip + 1, T - options.skip, static_cast<double>(t), true});
  }
  return x;
}

}  // namespace torchedit
