#include "imagic_eta.h"

#include <ATen/CPUGeneratorImpl.h>

namespace torchedit {

torch::Tensor imagicEtaScores(StableDiffusion& model, const ImagicState& state, const torch::Tensor& candidatesIn,
                              const torch::Tensor& x0In, const ImagicEtaScoreOptions& options, JobContext& job) {
  torch::NoGradGuard noGrad;
  const auto device = model.device();
  const torch::Tensor candidates = candidatesIn.to(device, torch::kFloat);
  const torch::Tensor x0 = x0In.to(device, torch::kFloat);
  const int64_t n = candidates.size(0), T = model.config().scheduler.numTrainTimesteps;
  // The K (t, ε) pairs are drawn once, so every candidate is measured on the same ones.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<int64_t> ts;
  std::vector<torch::Tensor> noises;
  for (int64_t k = 0; k < options.pairs; ++k) {
    ts.push_back(torch::randint(T, {1}, gen, torch::kLong).item<int64_t>());
    noises.push_back(torch::randn(x0.sizes(), gen, torch::kFloat).to(device));
  }
  torch::Tensor scores = torch::zeros({n, 2}, torch::kDouble);
  for (int64_t i = 0; i < n; ++i) {
    const torch::Tensor z = candidates.narrow(0, i, 1);
    double gain = 0;
    for (int64_t k = 0; k < options.pairs; ++k) {
      job.check();
      gain += imagicLoss(model, state.unet.get(), z, state.optimizedEmbedding, ts[k], noises[k]).item<double>() -
              imagicLoss(model, state.unet.get(), z, state.targetEmbedding, ts[k], noises[k]).item<double>();
      job.progress(Progress{"score", i * options.pairs + k + 1, n * options.pairs});
    }
    scores[i][0] = gain / static_cast<double>(options.pairs);
    scores[i][1] = (z - x0).pow(2).mean().item<double>();
  }
  return scores;
}

}  // namespace torchedit
