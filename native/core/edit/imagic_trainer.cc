#include "imagic_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adam.h>

#include <unordered_set>

#include "../runtime/error.h"

namespace torchedit {

torch::Tensor imagicLoss(StableDiffusion& model, ScriptModule* unet, const torch::Tensor& x0,
                         const torch::Tensor& embedding, int64_t t, const torch::Tensor& noise) {
  const double a = model.schedule().alphaBar(t);
  torch::Tensor xt = std::sqrt(a) * x0 + std::sqrt(1.0 - a) * noise;  // eq. (4) of 2006.11239
  torch::Tensor eps = model.predictNoise(xt, t, embedding, unet);
  return torch::mse_loss(eps, noise);
}

namespace {
// One (t, ε) draw per step from the job's generator: t ~ U{0..T−1}, ε ~ N(0, I).
struct Draw {
  int64_t t;
  torch::Tensor noise;
};

Draw draw(at::Generator& gen, const StableDiffusion& model, const torch::Tensor& like) {
  const int64_t T = model.config().scheduler.numTrainTimesteps;
  int64_t t = torch::randint(T, {1}, gen, torch::kLong).item<int64_t>();
  torch::Tensor noise = torch::randn(like.sizes(), gen, torch::kFloat).to(like.device());
  return {t, noise};
}
}  // namespace

ImagicState trainImagic(StableDiffusion& model, const torch::Tensor& x0In, const torch::Tensor& targetEmbedding,
                        const ImagicTrainOptions& options, JobContext& job) {
  torch::AutoGradMode gradMode(true);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const torch::Tensor x0 = x0In.to(model.device(), torch::kFloat).detach();
  ImagicState state;
  state.targetEmbedding = targetEmbedding.to(model.device(), torch::kFloat).detach().clone();

  // A. e ← e_tgt, optimised alone: the UNet's weights do not require gradients (see
  //    ScriptModule::load), so none are allocated for them.
  torch::Tensor e = state.targetEmbedding.clone().set_requires_grad(true);
  {
    torch::optim::Adam adam({e}, torch::optim::AdamOptions(options.embedding.lr));
    for (int64_t step = 0; step < options.embedding.steps; ++step) {
      job.check();
      Draw d = draw(gen, model, x0);
      adam.zero_grad();
      torch::Tensor loss = imagicLoss(model, nullptr, x0, e, d.t, d.noise);
      loss.backward();
      adam.step();
      state.embeddingLosses.push_back(loss.item<float>());
      job.progress(Progress{"embedding", step + 1, options.embedding.steps, state.embeddingLosses.back(), true});
    }
  }
  state.optimizedEmbedding = e.detach().clone();

  // B. The chosen parameters are copied and trained with e_opt frozen; only they hold gradients
  //    and Adam state. Every other weight is shared with the model's own UNet, which never changes
  //    (also not after an abort): its tensors never require gradients and are never written.
  const std::unordered_set<std::string> chosen(options.finetuneParameters.begin(), options.finetuneParameters.end());
  std::vector<std::pair<std::string, torch::Tensor>> own;
  for (const auto& p : model.unetModule()->module().named_parameters(/*recurse=*/true)) {
    if (chosen.count(p.name)) own.emplace_back(p.name, p.value.detach().clone());
  }
  if (own.empty() || own.size() != chosen.size()) {
    throw Error(code::kInvalidArgument, "finetune.parameters names " + std::to_string(chosen.size()) +
                                            " parameters, of which the UNet has " + std::to_string(own.size()));
  }
  state.unet = model.unetModule()->withParameters(own);
  // In the UNet's parameter order, so that training all of them is the full fine-tune step for step.
  std::vector<torch::Tensor> weights;
  for (const auto& p : state.unet->module().named_parameters(/*recurse=*/true)) {
    if (!chosen.count(p.name)) continue;
    torch::Tensor w = p.value;
    w.set_requires_grad(true);
    weights.push_back(w);
  }
  {
    torch::optim::Adam adam(weights, torch::optim::AdamOptions(options.finetune.lr));
    for (int64_t step = 0; step < options.finetune.steps; ++step) {
      job.check();
      Draw d = draw(gen, model, x0);
      adam.zero_grad();
      torch::Tensor loss = imagicLoss(model, state.unet.get(), x0, state.optimizedEmbedding, d.t, d.noise);
      loss.backward();
      adam.step();
      state.finetuneLosses.push_back(loss.item<float>());
      job.progress(Progress{"finetune", step + 1, options.finetune.steps, state.finetuneLosses.back(), true});
    }
  }
  // Training state (gradients, Adam moments) is freed with the optimiser; the copy is for inference now.
  for (auto& p : weights) {
    p.mutable_grad() = torch::Tensor();
    p.set_requires_grad(false);
  }
  return state;
}

}  // namespace torchedit
