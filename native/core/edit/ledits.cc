#include "ledits.h"

#include "../schedulers/stepper.h"
#include "implicit_mask.h"

namespace torchedit {

namespace {

// The inversion's sampler, ready to replay from step `skip` (docs/algorithms.md §3, §8).
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

EditResult ledits(StableDiffusion& model, const Inversion& inversion, const torch::Tensor& unconditional,
                  const torch::Tensor& target, const torch::Tensor& concepts, const torch::Tensor& userMask,
                  const EditOptions& options, JobContext& job) {
  const int64_t T = inversion.timesteps.numel();
  if (inversion.xts.dim() != 5 || inversion.zs.sizes() != inversion.xts.sizes() || inversion.xts.size(0) != T ||
      options.skip < 0 || options.skip >= T) {
    throw Error(code::kShape,
                "The inversion's tensors do not fit together (timesteps, xts, zs) or skip is out of range");
  }
  const auto& conceptOptions = options.guidance.concepts;
  if (concepts.defined() && static_cast<size_t>(concepts.size(0)) != conceptOptions.size()) {
    throw Error(code::kShape, "One set of concept options is needed per concept embedding");
  }
  const int64_t h = inversion.xts.size(3), w = inversion.xts.size(4);
  if (userMask.defined() &&
      (userMask.dim() != 4 || userMask.size(0) != 1 || userMask.size(1) != 1 || userMask.size(2) != h ||
       userMask.size(3) != w || !inversion.x0.defined() || inversion.x0.sizes() != inversion.xts[0].sizes())) {
    throw Error(code::kShape, "The user mask must be [1, 1, " + std::to_string(h) + ", " + std::to_string(w) +
                                  "] (the latent size) and the inversion must hold x0; got " +
                                  c10::str(userMask.sizes()));
  }
  bool needsMaps = false;
  for (const EditConcept& c : conceptOptions) needsMaps = needsMaps || c.implicitMask != ImplicitMask::Off;
  if (concepts.defined() && needsMaps && !model.hasAttentionMaps()) {
    throw Error(code::kNoAttentionMaps,
                "This model's UNet gives no cross-attention maps (model.json has no crossAttentionMaps), so "
                "implicitMask 'attention' and 'intersect' cannot be used; re-export the bundle with maps or use 'off'");
  }
  torch::NoGradGuard noGrad;
  std::unique_ptr<Stepper> stepper = replayStepper(model, inversion, options);
  SemanticGuidance guidance(options.guidance);
  const auto device = model.device();
  const int64_t conceptCount = concepts.defined() ? concepts.size(0) : 0;
  const int64_t trainSteps = model.config().scheduler.numTrainTimesteps;
  auto timesteps = inversion.timesteps.to(torch::kCPU);

  // One UNet batch per step: [∅, target?, concept_1..concept_C] (not C+2 calls); the same call
  // gives the concepts' cross-attention maps when a mask needs them.
  std::vector<torch::Tensor> states{unconditional.to(device)};
  if (target.defined()) states.push_back(target.to(device));
  if (conceptCount > 0) states.push_back(concepts.to(device));
  torch::Tensor context = torch::cat(states);
  const int64_t batch = context.size(0);
  GuidanceMasks masks;
  if (userMask.defined()) masks.user = userMask.to(device, torch::kFloat);
  masks.attention.resize(conceptCount);
  std::vector<torch::Tensor> applied;

  torch::Tensor x = inversion.xts[options.skip].to(device).clone();
  for (int64_t k = options.skip; k < T; ++k) {
    job.check();
    const int64_t t = timesteps[k].item<int64_t>();
    const int64_t i = k - options.skip;  // edit-step counter for warm-up and cooldown
    NoisePrediction out = model.predict(x.repeat({batch, 1, 1, 1}), t, context);
    torch::Tensor eps = out.noise;
    torch::Tensor epsUncond = eps.narrow(0, 0, 1);
    torch::Tensor noiseGuidance = torch::zeros_like(epsUncond);
    if (target.defined()) noiseGuidance = options.guidanceScale * (eps.narrow(0, 1, 1) - epsUncond);
    if (conceptCount > 0) {
      for (int64_t c = 0; c < conceptCount; ++c) {
        const EditConcept& concept = conceptOptions[c];
        if (concept.implicitMask == ImplicitMask::Off) continue;
        // M¹ from this step's maps of the concept's own branch (LEDITS++ §3.3; diffusers uses the
        // current step's store, not the average over steps)
        masks.attention[c] =
            attentionMask(out.attentionMaps[batch - conceptCount + c], concept.tokenCount, concept.threshold, h, w);
      }
      // diffusers' intersect uses M² only for t ≤ 800 of 1000
      masks.noiseMaskActive = 5 * t <= 4 * trainSteps;
      torch::Tensor epsConcepts = eps.narrow(0, batch - conceptCount, conceptCount).unsqueeze(1);
      noiseGuidance = noiseGuidance + guidance.step(i, epsUncond, epsConcepts, masks);
      if (options.returnMasks) applied.push_back(guidance.appliedMasks().cpu());
    }
    // x_{t−1} = μ_t(x_t, ε̃) + σ_t·z_t with the inversion's z_t (arXiv:2304.06140 §4)
    x = stepper->step(k, x, epsUncond + noiseGuidance, inversion.zs[k].to(device));
    if (masks.user.defined()) {
      // Outside the user's mask the latents stay on the inversion's trajectory, exactly.
      torch::Tensor onTrajectory = (k + 1 < T ? inversion.xts[k + 1] : inversion.x0).to(device);
      x = masks.user * x + (1 - masks.user) * onTrajectory;
    }
    job.progress(Progress{"edit", k - options.skip + 1, T - options.skip, static_cast<double>(t), true});
  }
  EditResult result;
  result.latents = x;
  if (options.returnMasks) {
    result.masks = applied.empty() ? torch::zeros({T - options.skip, 0, h, w}) : torch::stack(applied);
  }
  return result;
}

}  // namespace torchedit
