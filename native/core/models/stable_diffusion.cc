#include "stable_diffusion.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>

#include <functional>

#include "../runtime/error.h"

namespace torchedit {

namespace {
// Turns libtorch's autocast on for one call on this thread and restores the previous state.
class AutocastScope {
 public:
  AutocastScope(const c10::Device& device, std::optional<c10::ScalarType> dtype)
      : cuda_(device.is_cuda()), on_(dtype.has_value()) {
    if (!on_) return;
    previous_ = cuda_ ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
    if (cuda_) {
      at::autocast::set_autocast_gpu_dtype(*dtype);
      at::autocast::set_enabled(true);
    } else {
      at::autocast::set_autocast_cpu_dtype(*dtype);
      at::autocast::set_cpu_enabled(true);
    }
  }
  ~AutocastScope() {
    if (!on_) return;
    if (cuda_)
      at::autocast::set_enabled(previous_);
    else
      at::autocast::set_cpu_enabled(previous_);
    if (!previous_) at::autocast::clear_cache();  // the casts cached for this call
  }

 private:
  bool cuda_, on_, previous_ = false;
};
}  // namespace

std::shared_ptr<StableDiffusion> StableDiffusion::load(const std::string& dir, const ModelConfig& config,
                                                       const c10::Device& device,
                                                       std::optional<c10::ScalarType> dtype) {
  std::shared_ptr<StableDiffusion> model(new StableDiffusion());
  model->config_ = config;
  model->device_ = device;
  model->schedule_.emplace(config.scheduler);
  auto load = [&](const char* file) {
    auto module = ScriptModule::load(dir + "/" + file, device);
    if (dtype) module->module().to(*dtype);
    return module;
  };
  model->textEncoder_ = load("text_encoder.pt");
  model->unet_ = load("unet.pt");
  model->vaeEncoder_ = load("vae_encoder.pt");
  model->vaeDecoder_ = load("vae_decoder.pt");
  // The modules' own dtype (from their first parameter) is what inputs are cast to.
  model->dtype_ = dtype.value_or(c10::kFloat);
  for (const auto& p : model->unet_->module().parameters()) {
    model->dtype_ = p.scalar_type();
    break;
  }
  model->verify();
  return model;
}

// Runs each module once on the smallest input the config allows, so a bundle whose modules
// disagree with model.json fails at load time, not in the middle of a job.
void StableDiffusion::verify() {
  const int64_t L = config_.maxLength, D = config_.hiddenSize, C = config_.latentChannels;
  const int64_t f = config_.vaeScaleFactor, h = 8;  // 8×8 latents: cheap even for SD's UNet
  torch::NoGradGuard noGrad;
  // Runs one probe; any failure names the file and the model.json fields it was checked against.
  auto probe = [](const std::string& file, const std::string& field, at::IntArrayRef expected,
                  const std::function<torch::Tensor()>& call) {
    torch::Tensor out;
    try {
      out = call();
    } catch (const Error& e) {
      throw Error(code::kModelMismatch, file + " failed on inputs shaped by model.json (" + field + "): " + e.what());
    }
    if (out.sizes() != expected) {
      throw Error(code::kModelMismatch, file + " returned shape " + c10::str(out.sizes()) + " where model.json (" +
                                            field + ") implies " + c10::str(expected));
    }
    return out;
  };
  auto ids = torch::zeros({1, L}, torch::dtype(torch::kLong).device(device_));
  torch::Tensor context = probe("text_encoder.pt", "textEncoder.maxLength, textEncoder.hiddenSize", {1, L, D},
                                [&] { return encodeText(ids); });
  auto latents = torch::zeros({1, C, h, h}, torch::dtype(torch::kFloat).device(device_));
  NoisePrediction unetOut;
  probe("unet.pt", "latentChannels, textEncoder.hiddenSize", {1, C, h, h}, [&] {
    unetOut = predict(latents, schedule_->config().numTrainTimesteps / 2, context);
    return unetOut.noise;
  });
  if (unet_->fusedAttentionSites() > 0) {
    // The UNet as exported runs too, twice. Its graph executor then holds its optimised plan
    // before any job, as it did before fusion took the no-grad calls: the first training job
    // (Imagic, which runs this graph with gradients) otherwise ran another plan than later ones
    // and its result differed from theirs by ~1e-7. The fused clone must agree with it, else it
    // is dropped: fusion is only ever an optimisation.
    auto timesteps =
        torch::full({1}, schedule_->config().numTrainTimesteps / 2, torch::dtype(torch::kLong).device(device_));
    c10::IValue exported;
    for (int i = 0; i < 2; ++i) {
      AutocastScope autocast(device_, autocast_);
      exported = unet_->forwardExported({latents.to(dtype_), timesteps, context.to(dtype_)});
    }
    torch::Tensor plain =
        (exported.isTuple() ? exported.toTupleRef().elements()[0] : exported).toTensor().to(torch::kFloat);
    torch::Tensor fused = unetOut.noise;
    if (config_.predictionType == "v_prediction") {
      const double a = schedule_->alphaBar(schedule_->config().numTrainTimesteps / 2);
      fused = (fused - std::sqrt(1.0 - a) * latents) / std::sqrt(a);  // back to the module's own output
    }
    const double scale = std::max(plain.abs().max().item<double>(), 1e-6);
    const double tolerance = autocast_ || dtype_ != torch::kFloat ? 5e-2 : 1e-4;  // reduced precision: its round-off
    if ((fused - plain).abs().max().item<double>() > tolerance * scale) unet_->dropFusedAttention();
  }
  if (hasAttentionMaps()) {
    const int64_t a = h / config_.attentionMapDownsample;
    probe("unet.pt", "crossAttentionMaps.downsample, textEncoder.maxLength", {1, L, a, a},
          [&] { return unetOut.attentionMaps; });
  }
  auto image = torch::zeros({1, 3, h * f, h * f}, torch::dtype(torch::kFloat).device(device_));
  probe("vae_encoder.pt", "latentChannels, vaeScaleFactor", {1, 2 * C, h, h},
        [&] { return vaeEncoder_->forwardTensor({image.to(dtype_)}); });
  probe("vae_decoder.pt", "latentChannels, vaeScaleFactor", {1, 3, h * f, h * f},
        [&] { return vaeDecoder_->forwardTensor({latents.to(dtype_)}); });
}

torch::Tensor StableDiffusion::encodeText(const torch::Tensor& ids) {
  return textEncoder_->forwardTensor({ids.to(device_, torch::kLong)}).to(torch::kFloat);
}

torch::Tensor StableDiffusion::predictNoise(const torch::Tensor& sample, int64_t t, const torch::Tensor& context,
                                            ScriptModule* unet) {
  return predict(sample, t, context, unet).noise;
}

NoisePrediction StableDiffusion::predict(const torch::Tensor& sample, int64_t t, const torch::Tensor& context,
                                         ScriptModule* unet) {
  const int64_t batch = sample.size(0);
  auto timesteps = torch::full({batch}, t, torch::dtype(torch::kLong).device(device_));
  torch::Tensor ctx = context.size(0) == batch ? context : context.expand({batch, context.size(1), context.size(2)});
  ScriptModule& net = unet ? *unet : *unet_;
  c10::IValue result;
  {
    AutocastScope autocast(device_, autocast_);
    result = net.forward({sample.to(device_, dtype_), timesteps, ctx.to(device_, dtype_)});
  }
  NoisePrediction out;
  // A bundle with maps returns (ε or v, maps); one without, the tensor alone (docs/bundle-format.md).
  if (hasAttentionMaps()) {
    if (!result.isTuple() || result.toTupleRef().elements().size() != 2) {
      throw Error(code::kModelMismatch,
                  "unet.pt returned " + result.tagKind() +
                      " where model.json (crossAttentionMaps) implies a tuple (noise, cross-attention maps)");
    }
    const auto& parts = result.toTupleRef().elements();
    out.noise = parts[0].toTensor().to(torch::kFloat);
    out.attentionMaps = parts[1].toTensor().to(torch::kFloat);
  } else {
    if (!result.isTensor()) {
      throw Error(code::kModelMismatch, "unet.pt returned " + result.tagKind() +
                                            " where model.json (no crossAttentionMaps) implies one tensor");
    }
    out.noise = result.toTensor().to(torch::kFloat);
  }
  if (config_.predictionType == "v_prediction") {
    // ε = √ᾱ·v + √(1−ᾱ)·x_t (arXiv:2202.00512 §4)
    double a = schedule_->alphaBar(t);
    out.noise = std::sqrt(a) * out.noise + std::sqrt(1.0 - a) * sample.to(torch::kFloat);
  }
  return out;
}

torch::Tensor StableDiffusion::encodeImage(const torch::Tensor& image, bool sample, std::optional<uint64_t> seed) {
  torch::Tensor moments = vaeEncoder_->forwardTensor({image.to(device_, dtype_)}).to(torch::kFloat);
  auto parts = moments.chunk(2, 1);
  torch::Tensor latents = parts[0];
  if (sample) {
    // Reparameterised sample of the diagonal Gaussian posterior; logvar clamped as diffusers does.
    torch::Tensor std = torch::exp(0.5 * parts[1].clamp(-30.0, 20.0));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed.value_or(0));
    torch::Tensor noise = torch::randn(latents.sizes(), gen, torch::kFloat).to(device_);
    latents = latents + std * noise;
  }
  return latents * config_.scalingFactor;
}

torch::Tensor StableDiffusion::decodeLatents(const torch::Tensor& latents) {
  return vaeDecoder_->forwardTensor({(latents / config_.scalingFactor).to(device_, dtype_)}).to(torch::kFloat);
}

}  // namespace torchedit
