#include "stepper.h"

#include <cmath>
#include <string>

#include "../runtime/error.h"
#include "ddim.h"
#include "dpm_solver.h"

namespace torchedit {

namespace {

// Edit-friendly DDPM (arXiv:2304.06140): the DDIM step with η (docs/algorithms.md §0.3) over the
// last N timesteps of its schedule; memoryless, so resume() has nothing to do.
class DdpmStepper : public Stepper {
 public:
  DdpmStepper(const ScheduleConfig& config, const SamplerOptions& options)
      : Stepper(config), scheduler_(config, scheduleSteps(options), options.eta) {
    const auto& all = scheduler_.timesteps();
    timesteps_.assign(all.end() - options.steps, all.end());
  }

  Transition transition(int64_t k, const torch::Tensor& x, const torch::Tensor& eps) override {
    const int64_t t = timesteps_[k];
    return Transition{scheduler_.mean(x, eps, t), scheduler_.coefficients(t).sigma};
  }

 private:
  DdimScheduler scheduler_;
};

}  // namespace

torch::Tensor Stepper::step(int64_t k, const torch::Tensor& x, const torch::Tensor& eps, const torch::Tensor& z) {
  Transition tr = transition(k, x, eps);
  if (tr.sigma == 0.0 || !z.defined()) return tr.mean;
  return tr.mean + tr.sigma * z;
}

torch::Tensor Stepper::extractNoise(int64_t k, const torch::Tensor& x, const torch::Tensor& eps,
                                    const torch::Tensor& target, torch::Tensor& landed) {
  Transition tr = transition(k, x, eps);
  if (tr.sigma == 0.0) {
    landed = tr.mean;
    return torch::zeros_like(x);
  }
  torch::Tensor z = (target - tr.mean) / tr.sigma;
  landed = tr.mean + tr.sigma * z;
  return z;
}

torch::Tensor Stepper::addNoise(const torch::Tensor& original, const torch::Tensor& noise, int64_t k) const {
  double a = schedule_.alphaBar(timesteps_[k]);
  return std::sqrt(a) * original + std::sqrt(1.0 - a) * noise;
}

int64_t scheduleSteps(const SamplerOptions& options) {
  // Python's int(N * (1 + f)): the same double operations, truncated (50 · 1.15 gives 57).
  const int64_t steps = static_cast<int64_t>(static_cast<double>(options.steps) * (1.0 + options.skipNoisiest));
  if (options.steps < 1 || !(options.skipNoisiest >= 0.0 && options.skipNoisiest < 1.0)) {
    throw Error(code::kInvalidArgument, "steps must be positive and skipNoisiest in [0, 1)");
  }
  return steps;
}

std::unique_ptr<Stepper> makeStepper(const ScheduleConfig& config, const SamplerOptions& options) {
  switch (options.sampler) {
    case Sampler::DDPM: {
      const int64_t total = scheduleSteps(options);
      if (total > config.numTrainTimesteps) {
        throw Error(code::kInvalidArgument, "steps·(1 + skipNoisiest) = " + std::to_string(total) +
                                                " steps exceed the model's " +
                                                std::to_string(config.numTrainTimesteps) + " training timesteps");
      }
      return std::make_unique<DdpmStepper>(config, options);
    }
    case Sampler::DPMSolverPP:
      return std::make_unique<DpmSolverStepper>(config, options);
  }
  throw Error(code::kInternal, "unknown sampler");
}

}  // namespace torchedit
