#include "ddim.h"

#include <cmath>

namespace torchedit {

DdimScheduler::DdimScheduler(const ScheduleConfig& config, int64_t steps, double eta)
    : schedule_(config), steps_(steps), eta_(eta), timesteps_(schedule_.timesteps(steps)) {}

StepCoefficients DdimScheduler::coefficients(int64_t t) const {
  StepCoefficients c;
  c.alphaBar = schedule_.alphaBar(t);
  c.alphaBarPrev = schedule_.alphaBar(schedule_.previousTimestep(t, steps_));
  // v_t = (1−ᾱ_prev)/(1−ᾱ_t)·(1 − ᾱ_t/ᾱ_prev), eq. (16); σ_t = η·√v_t.
  double variance = (1.0 - c.alphaBarPrev) / (1.0 - c.alphaBar) * (1.0 - c.alphaBar / c.alphaBarPrev);
  c.sigma = eta_ * std::sqrt(std::max(variance, 0.0));
  c.direction = std::sqrt(std::max(1.0 - c.alphaBarPrev - c.sigma * c.sigma, 0.0));
  return c;
}

torch::Tensor DdimScheduler::predictOriginal(const torch::Tensor& sample, const torch::Tensor& eps, int64_t t) const {
  double a = schedule_.alphaBar(t);
  return (sample - std::sqrt(1.0 - a) * eps) / std::sqrt(a);
}

torch::Tensor DdimScheduler::mean(const torch::Tensor& sample, const torch::Tensor& eps, int64_t t) const {
  StepCoefficients c = coefficients(t);
  return std::sqrt(c.alphaBarPrev) * predictOriginal(sample, eps, t) + c.direction * eps;
}

torch::Tensor DdimScheduler::step(const torch::Tensor& sample, const torch::Tensor& eps, int64_t t,
                                  const torch::Tensor& noise) const {
  torch::Tensor mu = mean(sample, eps, t);
  double sigma = coefficients(t).sigma;
  if (sigma == 0.0 || !noise.defined()) return mu;
  return mu + sigma * noise;
}

torch::Tensor DdimScheduler::extractNoise(const torch::Tensor& sample, const torch::Tensor& eps, int64_t t,
                                          const torch::Tensor& prevSample) const {
  StepCoefficients c = coefficients(t);
  torch::Tensor mu = mean(sample, eps, t);
  if (c.sigma == 0.0) return torch::zeros_like(sample);
  return (prevSample - mu) / c.sigma;
}

torch::Tensor DdimScheduler::addNoise(const torch::Tensor& original, const torch::Tensor& noise, int64_t t) const {
  double a = schedule_.alphaBar(t);
  return std::sqrt(a) * original + std::sqrt(1.0 - a) * noise;
}

}  // namespace torchedit
