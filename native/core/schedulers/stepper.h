// The sampler an edit-friendly inversion is made with and replayed by (docs/algorithms.md §1,
// §8): one reverse step at a time along the inversion's timesteps, with an injected noise map z,
// and the step's inverse (the z that lands on a given latent). Inversion (edit/ddpm_inversion.cc)
// and replay (edit/ledits.cc) both step through this interface, so neither knows which sampler
// it runs and a replay makes exactly the steps its inversion made.
#pragma once

#include <torch/types.h>

#include <memory>
#include <vector>

#include "schedule.h"

namespace torchedit {

enum class Sampler {
  DDPM,         // the DDIM/DDPM posterior step with η (ddim.h), arXiv:2304.06140
  DPMSolverPP,  // SDE-DPM-Solver++(2M) (dpm_solver.h), as LEDITS++ (arXiv:2311.16711) inverts
};

// No defaults here: every field is read from the options TypeScript fills in.
struct SamplerOptions {
  Sampler sampler;
  int64_t steps;        // N: the timesteps inverted, and replayed
  double skipNoisiest;  // f in [0, 1): the schedule has int(N·(1 + f)) steps, the last N are inverted
  double eta;           // DDPM's η in (0, 1]; unused by DPM-Solver++ (its SDE fixes the noise)
};

// One reverse step from x at timesteps()[k] towards the next timestep: x_prev = mean + sigma·z.
struct Transition {
  torch::Tensor mean;
  double sigma;  // > 0 for every step of both samplers (docs/algorithms.md §1, §8)
};

class Stepper {
 public:
  virtual ~Stepper() = default;

  // The N inverted timesteps, largest first.
  const std::vector<int64_t>& timesteps() const { return timesteps_; }

  // The step leaving timesteps()[k] for the noise estimate ε̂ at x. A multistep sampler keeps
  // its history here: calls go k = start, start + 1, … (start 0, or as set by resume()).
  virtual Transition transition(int64_t k, const torch::Tensor& x, const torch::Tensor& eps) = 0;

  // Before replaying from step k > 0: rebuild whatever history a multistep sampler needs from
  // the inversion's latents xts [N, B, C, h, w] and maps zs (the algebraic inverse of its steps).
  virtual void resume(int64_t k, const torch::Tensor& xts, const torch::Tensor& zs) {}

  // x_prev = mean + sigma·z (a replay step).
  torch::Tensor step(int64_t k, const torch::Tensor& x, const torch::Tensor& eps, const torch::Tensor& z);

  // The z that makes step() land on `target`: z = (target − mean)/sigma (arXiv:2304.06140
  // eq. (5)); `landed` receives mean + sigma·z, the value a replay computes.
  torch::Tensor extractNoise(int64_t k, const torch::Tensor& x, const torch::Tensor& eps, const torch::Tensor& target,
                             torch::Tensor& landed);

  // q(x_t | x_0) at timesteps()[k]: √ᾱ_t·x_0 + √(1−ᾱ_t)·ε (arXiv:2006.11239 eq. (4)).
  torch::Tensor addNoise(const torch::Tensor& original, const torch::Tensor& noise, int64_t k) const;

 protected:
  explicit Stepper(const ScheduleConfig& config) : schedule_(config) {}
  NoiseSchedule schedule_;
  std::vector<int64_t> timesteps_;
};

// int(N·(1 + f)): the schedule's step count, rounded as diffusers' LEDITS++ `invert` does.
int64_t scheduleSteps(const SamplerOptions& options);

// The stepper of `options.sampler` (a fresh one: no history).
std::unique_ptr<Stepper> makeStepper(const ScheduleConfig& config, const SamplerOptions& options);

}  // namespace torchedit
