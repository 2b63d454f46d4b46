#include "ddpm_inversion.h"

#include <ATen/CPUGeneratorImpl.h>

#include "../schedulers/stepper.h"

namespace torchedit {

torch::Tensor sourceNoise(StableDiffusion& model, const torch::Tensor& x, int64_t t, const torch::Tensor& unconditional,
                          const torch::Tensor& source, double sourceGuidanceScale) {
  if (!source.defined()) return model.predictNoise(x, t, unconditional);
  auto parts = model.predictNoise(x.repeat({2, 1, 1, 1}), t, torch::cat({unconditional, source})).chunk(2);
  return parts[0] + sourceGuidanceScale * (parts[1] - parts[0]);
}

Inversion invert(StableDiffusion& model, const torch::Tensor& x0In, const torch::Tensor& unconditional,
                 const torch::Tensor& source, const InversionOptions& options, JobContext& job) {
  torch::NoGradGuard noGrad;
  std::unique_ptr<Stepper> stepper = makeStepper(model.config().scheduler, options.sampler);
  const auto& ts = stepper->timesteps();
  const int64_t T = static_cast<int64_t>(ts.size());
  torch::Tensor x0 = x0In.to(model.device(), torch::kFloat);

  // 1. x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε̃_t with ε̃_t drawn independently for every t (eq. (6)):
  //    not a Markov chain. One draw per step, smallest t first, from the job's seeded generator.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<torch::Tensor> xts(T), zs(T);
  for (int64_t k = T - 1; k >= 0; --k) {
    torch::Tensor noise = torch::randn(x0.sizes(), gen, torch::kFloat).to(model.device());
    xts[k] = stepper->addNoise(x0, noise, k);
  }

  // 2. From the noisiest step down: z_t = (x_{t−1} − μ_t(x_t, ε̂))/σ_t (eq. (5)), then overwrite
  //    x_{t−1} ← μ_t + σ_t·z_t so sampling replays exactly what inversion computed. A multistep
  //    sampler's history is the inversion's own trajectory (the overwritten latents).
  const torch::Tensor src = source.defined() ? source.to(model.device()) : source;
  const torch::Tensor uncond = unconditional.to(model.device());
  for (int64_t k = 0; k < T; ++k) {
    job.check();
    const int64_t t = ts[k];
    torch::Tensor eps = sourceNoise(model, xts[k], t, uncond, src, options.sourceGuidanceScale);
    const torch::Tensor& prev = k + 1 < T ? xts[k + 1] : x0;
    torch::Tensor landed;
    zs[k] = stepper->extractNoise(k, xts[k], eps, prev, landed);
    if (k + 1 < T) xts[k + 1] = landed;
    job.progress(Progress{"invert", k + 1, T, static_cast<double>(t), true});
  }
  Inversion result;
  result.x0 = x0;
  result.timesteps = torch::tensor(ts, torch::kLong);
  result.xts = torch::stack(xts);
  result.zs = torch::stack(zs);
  return result;
}

}  // namespace torchedit
