#include "schedule.h"

#include <algorithm>
#include <cmath>

#include "../runtime/error.h"

namespace torchedit {

NoiseSchedule::NoiseSchedule(const ScheduleConfig& config) : config_(config) {
  const int64_t T = config.numTrainTimesteps;
  if (T < 1) throw Error(code::kInvalidArgument, "numTrainTimesteps must be positive");
  // Betas in float32 as diffusers makes them (torch.linspace in float32), so ᾱ matches it.
  torch::Tensor betas;
  if (config.betaSchedule == "scaled_linear") {
    betas = torch::linspace(std::sqrt(config.betaStart), std::sqrt(config.betaEnd), T, torch::kFloat32).pow(2);
  } else if (config.betaSchedule == "linear") {
    betas = torch::linspace(config.betaStart, config.betaEnd, T, torch::kFloat32);
  } else {
    throw Error(code::kUnsupported, "Unsupported betaSchedule '" + config.betaSchedule + "'");
  }
  torch::Tensor cumprod = torch::cumprod(1.0 - betas, 0);  // ᾱ_t = Π (1 − β_s)
  auto accessor = cumprod.accessor<float, 1>();
  alphasCumprod_.resize(T);
  for (int64_t t = 0; t < T; ++t) alphasCumprod_[t] = accessor[t];
  finalAlphaBar_ = config.setAlphaToOne ? 1.0 : alphasCumprod_[0];
}

double NoiseSchedule::alphaBar(int64_t t) const {
  if (t < 0) return finalAlphaBar_;
  if (t >= config_.numTrainTimesteps) throw Error(code::kInvalidArgument, "timestep out of range");
  return alphasCumprod_[t];
}

std::vector<int64_t> NoiseSchedule::timesteps(int64_t steps) const {
  const int64_t T = config_.numTrainTimesteps;
  if (steps < 1 || steps > T) {
    throw Error(code::kInvalidArgument, "steps must be between 1 and " + std::to_string(T));
  }
  std::vector<int64_t> ts(steps);
  if (config_.timestepSpacing == "leading") {
    const int64_t delta = T / steps;
    for (int64_t k = 0; k < steps; ++k) ts[k] = std::min((steps - 1 - k) * delta + config_.stepsOffset, T - 1);
  } else if (config_.timestepSpacing == "trailing") {
    const double delta = static_cast<double>(T) / steps;
    for (int64_t k = 0; k < steps; ++k) ts[k] = static_cast<int64_t>(std::round(T - k * delta)) - 1;
  } else if (config_.timestepSpacing == "linspace") {
    for (int64_t k = 0; k < steps; ++k) {
      ts[k] =
          static_cast<int64_t>(std::round((T - 1) * (1.0 - static_cast<double>(k) / std::max<int64_t>(steps - 1, 1))));
    }
  } else {
    throw Error(code::kUnsupported, "Unsupported timestepSpacing '" + config_.timestepSpacing + "'");
  }
  return ts;
}

int64_t NoiseSchedule::previousTimestep(int64_t t, int64_t steps) const {
  return t - config_.numTrainTimesteps / steps;
}

}  // namespace torchedit
