// The noise schedule shared by every scheduler: betas, ᾱ_t, and the inference timesteps.
// Config fields are model.json's `scheduler` block (docs/bundle-format.md).
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace torchedit {

// No defaults here: every field is read from model.json as lib/model/config.ts completed it.
struct ScheduleConfig {
  int64_t numTrainTimesteps;
  std::string betaSchedule;  // "linear" | "scaled_linear"
  double betaStart;
  double betaEnd;
  int64_t stepsOffset;
  bool setAlphaToOne;
  std::string timestepSpacing;  // "leading" | "trailing" | "linspace"
};

class NoiseSchedule {
 public:
  explicit NoiseSchedule(const ScheduleConfig& config);

  // ᾱ_t for a training timestep t in [0, T); t < 0 is "before the first step": ᾱ_final
  // (1 with setAlphaToOne, else ᾱ_0), as in DDIM's prev-timestep rule.
  double alphaBar(int64_t t) const;

  // N inference timesteps, largest first. "leading": Δ = T // N, t_k = (N−1−k)·Δ + offset,
  // clamped to T−1 so N = T with offset 1 stays in range (docs/algorithms.md §0).
  std::vector<int64_t> timesteps(int64_t steps) const;
  // The timestep after t in the reverse process: t − T // N (may be negative).
  int64_t previousTimestep(int64_t t, int64_t steps) const;

  const ScheduleConfig& config() const { return config_; }

 private:
  ScheduleConfig config_;
  std::vector<double> alphasCumprod_;
  double finalAlphaBar_;
};

}  // namespace torchedit
