#include "dpm_solver.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "../runtime/error.h"

namespace torchedit {

std::vector<int64_t> dpmSolverTimesteps(const NoiseSchedule& schedule, int64_t steps) {
  const ScheduleConfig& config = schedule.config();
  const int64_t T = config.numTrainTimesteps;
  std::vector<int64_t> ts(steps);
  if (config.timestepSpacing == "leading") {
    const int64_t ratio = T / (steps + 1);
    if (steps < 1 || ratio < 1) {
      throw Error(code::kInvalidArgument, "DPM-Solver++ with \"leading\" spacing needs between 1 and " +
                                              std::to_string(T - 1) + " schedule steps, got " + std::to_string(steps));
    }
    // Clamped like DDIM's (§0.2); reached only by steps = T − 1 with stepsOffset 1.
    for (int64_t k = 0; k < steps; ++k) ts[k] = std::min((steps - k) * ratio + config.stepsOffset, T - 1);
  } else if (config.timestepSpacing == "linspace" || config.timestepSpacing == "trailing") {
    if (steps < 1 || steps > T) {
      throw Error(code::kInvalidArgument, "DPM-Solver++ needs between 1 and " + std::to_string(T) +
                                              " schedule steps, got " + std::to_string(steps));
    }
    // std::nearbyint rounds half to even, as numpy's round does.
    const bool linspace = config.timestepSpacing == "linspace";
    const double ratio = linspace ? static_cast<double>(T - 1) / steps : static_cast<double>(T) / steps;
    for (int64_t k = 0; k < steps; ++k) {
      ts[k] = linspace ? static_cast<int64_t>(std::nearbyint((steps - k) * ratio))
                       : static_cast<int64_t>(std::nearbyint(T - k * ratio)) - 1;
    }
  } else {
    throw Error(code::kUnsupported, "Unsupported timestepSpacing '" + config.timestepSpacing + "'");
  }
  return ts;
}

DpmSolverStepper::DpmSolverStepper(const ScheduleConfig& config, const SamplerOptions& options) : Stepper(config) {
  const std::vector<int64_t> all = dpmSolverTimesteps(schedule_, scheduleSteps(options));
  timesteps_.assign(all.end() - options.steps, all.end());
  for (size_t k = 1; k < timesteps_.size(); ++k) {
    if (timesteps_[k] >= timesteps_[k - 1]) {
      throw Error(code::kInvalidArgument, "DPM-Solver++ needs strictly decreasing timesteps: use fewer steps");
    }
  }
}

double DpmSolverStepper::alphaBarAt(int64_t k) const {
  // The step after the last timestep ends at ᾱ_0, not at ᾱ = 1 (σ = 0): diffusers'
  // final_sigmas_type "sigma_min". σ > 0 keeps the last step's noise coefficient nonzero, so its
  // map z is defined and the replay lands exactly on x_0 (docs/algorithms.md §8).
  return schedule_.alphaBar(k < static_cast<int64_t>(timesteps_.size()) ? timesteps_[k] : 0);
}

double DpmSolverStepper::lambdaAt(int64_t k) const {
  const double a = alphaBarAt(k);
  return 0.5 * std::log(a / (1.0 - a));  // λ = log(α/σ), α = √ᾱ, σ = √(1 − ᾱ)
}

DpmSolverStepper::Coefficients DpmSolverStepper::coefficients(int64_t k, bool secondOrder) const {
  const double aS = alphaBarAt(k), aT = alphaBarAt(k + 1);
  const double h = lambdaAt(k + 1) - lambdaAt(k);
  const double oneMinusE2h = -std::expm1(-2.0 * h);  // 1 − e^{−2h}
  Coefficients c;
  c.sampleScale = std::sqrt((1.0 - aT) / (1.0 - aS)) * std::exp(-h);
  c.dataScale = std::sqrt(aT) * oneMinusE2h;
  c.historyScale = secondOrder ? 0.5 * c.dataScale * h / (lambdaAt(k) - lambdaAt(k - 1)) : 0.0;
  c.sigma = std::sqrt(1.0 - aT) * std::sqrt(oneMinusE2h);
  return c;
}

torch::Tensor DpmSolverStepper::dataPrediction(int64_t k, const torch::Tensor& x, const torch::Tensor& eps) const {
  const double a = alphaBarAt(k);
  return (x - std::sqrt(1.0 - a) * eps) / std::sqrt(a);  // D = (x − σ_s·ε̂)/α_s
}

Transition DpmSolverStepper::transition(int64_t k, const torch::Tensor& x, const torch::Tensor& eps) {
  const bool secondOrder = k > 0;
  if (secondOrder && previousStep_ != k - 1) {
    throw Error(code::kInternal, "DPM-Solver++ steps must follow each other (resume() before a replay from a skip)");
  }
  torch::Tensor data = dataPrediction(k, x, eps);
  Coefficients c = coefficients(k, secondOrder);
  // x_t = (σ_t/σ_s)e^{−h}·x + α_t(1 − e^{−2h})·D_0 [+ ½α_t(1 − e^{−2h})·(D_0 − D_1)/r] + σ_t√(1 − e^{−2h})·z
  torch::Tensor mean = c.sampleScale * x + c.dataScale * data;
  if (secondOrder) mean = mean + c.historyScale * (data - previousData_.to(data.device()));
  previousData_ = data;
  previousStep_ = k;
  return Transition{mean, c.sigma};
}

void DpmSolverStepper::resume(int64_t k, const torch::Tensor& xts, const torch::Tensor& zs) {
  previousData_ = torch::Tensor();
  previousStep_ = -1;
  // Step j of the inversion made xts[j+1] = s·xts[j] + (d + c)·D_j − c·D_{j−1} + σ·zs[j] (c = 0
  // for j = 0), so D_j follows from the stored latents and maps, j = 0 … k − 1. Each D_j enters
  // the next step multiplied by c, which undoes the division: rounding stays at float precision.
  // Computed in float64, so the only rounding left is the stored latents' own.
  if (k == 0) return;
  const torch::Tensor x = xts.narrow(0, 0, k + 1).to(torch::kDouble), z = zs.narrow(0, 0, k).to(torch::kDouble);
  torch::Tensor data;
  for (int64_t j = 0; j < k; ++j) {
    Coefficients c = coefficients(j, j > 0);
    torch::Tensor rest = x[j + 1] - c.sampleScale * x[j] - c.sigma * z[j];
    data = j == 0 ? rest / c.dataScale : (rest + c.historyScale * data) / (c.dataScale + c.historyScale);
  }
  previousData_ = data.to(xts.scalar_type());
  previousStep_ = k - 1;
}

}  // namespace torchedit
