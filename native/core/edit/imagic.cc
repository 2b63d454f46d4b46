#include "imagic.h"

namespace torchedit {

torch::Tensor interpolateEmbedding(const ImagicState& state, double eta) {
  // Exact at the ends: η = 1 returns e_tgt itself, η = 0 e_opt itself (no rounding from a blend).
  if (eta == 1.0) return state.targetEmbedding;
  if (eta == 0.0) return state.optimizedEmbedding;
  return eta * state.targetEmbedding + (1.0 - eta) * state.optimizedEmbedding;
}

torch::Tensor imagicGenerate(StableDiffusion& model, const ImagicState& state, const torch::Tensor& unconditional,
                             const ImagicGenerateOptions& options, JobContext& job) {
  return textToImage(model, interpolateEmbedding(state, options.eta), unconditional, options.sampling, job,
                     state.unet.get());
}

std::pair<torch::Tensor, torch::Tensor> imagicLossGradient(StableDiffusion& model, const torch::Tensor& x0,
                                                           const torch::Tensor& embedding, int64_t t,
                                                           const torch::Tensor& noise) {
  torch::AutoGradMode gradMode(true);
  const auto device = model.device();
  torch::Tensor e = embedding.to(device, torch::kFloat).detach().clone().set_requires_grad(true);
  torch::Tensor loss = imagicLoss(model, nullptr, x0.to(device), e, t, noise.to(device));
  loss.backward();
  return {loss.detach(), e.grad().detach()};
}

std::pair<torch::Tensor, std::vector<std::pair<std::string, torch::Tensor>>> imagicParameterGradients(
    StableDiffusion& model, const torch::Tensor& x0, const torch::Tensor& embedding, int64_t t,
    const torch::Tensor& noise, const std::vector<std::string>& names) {
  torch::AutoGradMode gradMode(true);
  const auto device = model.device();
  std::vector<std::pair<std::string, torch::Tensor>> own;
  for (const auto& name : names) {
    for (const auto& p : model.unetModule()->module().named_parameters(/*recurse=*/true)) {
      if (p.name == name) own.emplace_back(name, p.value.detach().clone().set_requires_grad(true));
    }
  }
  auto unet = model.unetModule()->withParameters(own);
  torch::Tensor e = embedding.to(device, torch::kFloat).detach();
  torch::Tensor loss = imagicLoss(model, unet.get(), x0.to(device), e, t, noise.to(device));
  loss.backward();
  std::vector<std::pair<std::string, torch::Tensor>> grads;
  for (const auto& p : unet->module().named_parameters(/*recurse=*/true)) {
    if (p.value.grad().defined()) grads.emplace_back(p.name, p.value.grad().detach().clone());
  }
  return {loss.detach(), grads};
}

}  // namespace torchedit
