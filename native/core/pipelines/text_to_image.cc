#include "text_to_image.h"

#include <ATen/CPUGeneratorImpl.h>

#include "../schedulers/ddim.h"

namespace torchedit {

torch::Tensor textToImage(StableDiffusion& model, const torch::Tensor& context, const torch::Tensor& unconditional,
                          const TextToImageOptions& options, JobContext& job, ScriptModule* unet) {
  torch::NoGradGuard noGrad;
  const auto& config = model.config();
  const int64_t batch = context.size(0);
  DdimScheduler scheduler(config.scheduler, options.steps, options.eta);
  // One CPU generator per job, as diffusers with generator=torch.Generator().manual_seed(seed):
  // first the initial latents, then one draw per step for the η-noise.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  torch::Tensor latents =
      torch::randn({batch, config.latentChannels, options.latentHeight, options.latentWidth}, gen, torch::kFloat)
          .to(model.device());
  const bool guided = options.guidanceScale > 1.0;
  // [unconditional, conditional] in one batch: one UNet call per step, not two.
  torch::Tensor states = context.to(model.device());
  if (guided) {
    torch::Tensor uncond = unconditional.to(model.device()).expand({batch, context.size(1), context.size(2)});
    states = torch::cat({uncond, states});
  }
  const auto& timesteps = scheduler.timesteps();
  for (size_t i = 0; i < timesteps.size(); ++i) {
    job.check();
    const int64_t t = timesteps[i];
    torch::Tensor eps;
    if (guided) {
      auto parts = model.predictNoise(torch::cat({latents, latents}), t, states, unet).chunk(2);
      // ε̃ = ε_∅ + s·(ε_c − ε_∅), classifier-free guidance (arXiv:2207.12598 eq. (6))
      eps = parts[0] + options.guidanceScale * (parts[1] - parts[0]);
    } else {
      eps = model.predictNoise(latents, t, states, unet);
    }
    torch::Tensor noise;
    if (options.eta > 0) noise = torch::randn(latents.sizes(), gen, torch::kFloat).to(model.device());
    latents = scheduler.step(latents, eps, t, noise);
    job.progress(Progress{"denoise", static_cast<int64_t>(i) + 1, static_cast<int64_t>(timesteps.size()),
                          static_cast<double>(t), true});
  }
  return latents;
}

}  // namespace torchedit
