// SDE-DPM-Solver++(2M) (Lu et al., "DPM-Solver++", arXiv:2211.01095, §4 and appendix; the SDE
// variant as diffusers' DPMSolverMultistepScheduler `sde-dpmsolver++`, midpoint), the sampler
// LEDITS++ (Brack et al., arXiv:2311.16711) inverts with. Written in terms of the noise schedule:
// α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t), λ_t = log(α_t/σ_t), data prediction D = (x − σ_t·ε̂)/α_t.
// docs/algorithms.md §8.
#pragma once

#include "stepper.h"

namespace torchedit {

// N timesteps, largest first, spaced as DPMSolverMultistepScheduler spaces them (which is not
// DDIM's for "leading" and "linspace"): leading t_k = (N − k)·(T // (N + 1)) + offset; linspace
// t_k = round((T − 1)·(N − k)/N); trailing t_k = round(T − k·T/N) − 1 (numpy's half-to-even
// rounding). Throws ERR_INVALID_ARGUMENT when the spacing leaves no room (N + 1 > T for leading).
std::vector<int64_t> dpmSolverTimesteps(const NoiseSchedule& schedule, int64_t steps);

class DpmSolverStepper : public Stepper {
 public:
  // The last options.steps timesteps of a schedule of scheduleSteps(options) steps.
  DpmSolverStepper(const ScheduleConfig& config, const SamplerOptions& options);

  Transition transition(int64_t k, const torch::Tensor& x, const torch::Tensor& eps) override;
  void resume(int64_t k, const torch::Tensor& xts, const torch::Tensor& zs) override;

 private:
  struct Coefficients {
    double sampleScale;   // (σ_t/σ_s)·e^{−h}
    double dataScale;     // α_t·(1 − e^{−2h})
    double historyScale;  // ½·α_t·(1 − e^{−2h})/r, r = h_prev/h (0 for a first-order step)
    double sigma;         // σ_t·√(1 − e^{−2h})
  };
  // ᾱ at step k's start (k < N) or end (k = N: the final level ᾱ_0, never 1).
  double alphaBarAt(int64_t k) const;
  double lambdaAt(int64_t k) const;
  Coefficients coefficients(int64_t k, bool secondOrder) const;
  torch::Tensor dataPrediction(int64_t k, const torch::Tensor& x, const torch::Tensor& eps) const;

  torch::Tensor previousData_;  // D of step `previousStep_`, the multistep history
  int64_t previousStep_ = -1;
};

}  // namespace torchedit
