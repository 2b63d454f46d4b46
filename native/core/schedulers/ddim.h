// The DDIM/DDPM posterior step, η-parameterised (arXiv:2010.02502 "Denoising Diffusion
// Implicit Models"): η = 0 is DDIM, η = 1 is DDPM's posterior variance. Edit-friendly
// inversion's noise extraction lives here beside step(), its exact inverse (docs/architecture.md "Why this layout").
#pragma once

#include <torch/types.h>

#include "schedule.h"

namespace torchedit {

// Everything one reverse step from t to tPrev needs.
struct StepCoefficients {
  double alphaBar;      // ᾱ_t
  double alphaBarPrev;  // ᾱ_prev
  double sigma;         // σ_t = η·√v_t
  double direction;     // coefficient of ε̂ in μ: √(1 − ᾱ_prev − σ_t²)
};

class DdimScheduler {
 public:
  DdimScheduler(const ScheduleConfig& config, int64_t steps, double eta);

  const std::vector<int64_t>& timesteps() const { return timesteps_; }
  StepCoefficients coefficients(int64_t t) const;

  // x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, eq. (12) of 2010.02502 ("predicted x_0").
  torch::Tensor predictOriginal(const torch::Tensor& sample, const torch::Tensor& eps, int64_t t) const;
  // μ_t = √ᾱ_prev·x̂_0 + √(1 − ᾱ_prev − σ_t²)·ε̂, eq. (12): the step's mean.
  torch::Tensor mean(const torch::Tensor& sample, const torch::Tensor& eps, int64_t t) const;
  // x_prev = μ_t + σ_t·z, eq. (12) with injected noise z (ignored when σ_t = 0).
  torch::Tensor step(const torch::Tensor& sample, const torch::Tensor& eps, int64_t t,
                     const torch::Tensor& noise) const;
  // The z that makes step() land exactly on `prevSample`: z = (x_prev − μ_t)/σ_t
  // (edit-friendly DDPM inversion, arXiv:2304.06140 eq. (5)).
  torch::Tensor extractNoise(const torch::Tensor& sample, const torch::Tensor& eps, int64_t t,
                             const torch::Tensor& prevSample) const;
  // q(x_t | x_0): √ᾱ_t·x_0 + √(1−ᾱ_t)·ε, eq. (4) of arXiv:2006.11239.
  torch::Tensor addNoise(const torch::Tensor& original, const torch::Tensor& noise, int64_t t) const;

  const NoiseSchedule& schedule() const { return schedule_; }
  double eta() const { return eta_; }

 private:
  NoiseSchedule schedule_;
  int64_t steps_;
  double eta_;
  std::vector<int64_t> timesteps_;
};

}  // namespace torchedit
