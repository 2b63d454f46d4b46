// A Stable Diffusion bundle's four TorchScript modules and the config that ties them together
// (docs/bundle-format.md). Typed calls with the latents' scaling and the v→ε conversion done once, here.
#pragma once

#include <optional>
#include <string>

#include "../schedulers/schedule.h"
#include "script_module.h"

namespace torchedit {

// No defaults here: every field is read from model.json as lib/model/config.ts completed it.
struct ModelConfig {
  int64_t sampleSize;  // latent side the model was trained at
  int64_t latentChannels;
  int64_t vaeScaleFactor;
  double scalingFactor;
  std::string predictionType;  // "epsilon" or "v_prediction"
  int64_t maxLength;
  int64_t hiddenSize;
  ScheduleConfig scheduler;
  // model.json `crossAttentionMaps.downsample` (format version 2): the UNet also returns its
  // cross-attention probabilities [B, L, h/d, w/d]; 0 when the bundle has no maps.
  int64_t attentionMapDownsample;
};

// One UNet call's outputs: ε̂ [B, C, h, w] (float32) and, for bundles with cross-attention maps,
// the maps [B, L, h/d, w/d] (float32, averaged over heads and the declared layers); else undefined.
struct NoisePrediction {
  torch::Tensor noise;
  torch::Tensor attentionMaps;
};

class StableDiffusion {
 public:
  // Loads the four modules from `dir` onto `device` (cast to `dtype` when given) and checks
  // their output shapes against `config` on a small probe. Throws ERR_MODEL_MISMATCH naming the
  // file and the model.json field, or the module loader's errors.
  static std::shared_ptr<StableDiffusion> load(const std::string& dir, const ModelConfig& config,
                                               const c10::Device& device, std::optional<c10::ScalarType> dtype);

  // [B, L] int64 token ids → [B, L, D] last hidden state, float32.
  torch::Tensor encodeText(const torch::Tensor& ids);
  // ε̂(x_t, t, c) for a batch; x and context in float32, any batch size (t broadcast).
  // v-prediction output is converted to ε. `unet` replaces the bundle's UNet (a fine-tuned copy).
  torch::Tensor predictNoise(const torch::Tensor& sample, int64_t t, const torch::Tensor& context,
                             ScriptModule* unet = nullptr);
  // predictNoise() with the cross-attention maps of the same call (undefined without maps).
  NoisePrediction predict(const torch::Tensor& sample, int64_t t, const torch::Tensor& context,
                          ScriptModule* unet = nullptr);
  bool hasAttentionMaps() const { return config_.attentionMapDownsample > 0; }
  // Image [B, 3, H, W] in [-1, 1] → latents × scalingFactor; the posterior mean, or a sample
  // mean + exp(logvar/2)·n with n from `generator` when `sample` is true.
  torch::Tensor encodeImage(const torch::Tensor& image, bool sample, std::optional<uint64_t> seed);
  // Latents (scaled) → image [B, 3, H, W] in about [-1, 1], float32.
  torch::Tensor decodeLatents(const torch::Tensor& latents);

  // Mixed precision for the UNet (the cost of every step): its matmuls and convolutions run in
  // `dtype` (bfloat16 on CPU; float16/bfloat16 on CUDA) under libtorch's autocast, everything
  // else in float32. nullopt = full precision.
  void setAutocast(std::optional<c10::ScalarType> dtype) { autocast_ = dtype; }
  std::optional<c10::ScalarType> autocast() const { return autocast_; }

  const ModelConfig& config() const { return config_; }
  const NoiseSchedule& schedule() const { return *schedule_; }
  const c10::Device& device() const { return device_; }
  c10::ScalarType dtype() const { return dtype_; }
  ScriptModule& unet() { return *unet_; }
  std::shared_ptr<ScriptModule> textEncoderModule() const { return textEncoder_; }
  std::shared_ptr<ScriptModule> unetModule() const { return unet_; }
  std::shared_ptr<ScriptModule> vaeEncoderModule() const { return vaeEncoder_; }
  std::shared_ptr<ScriptModule> vaeDecoderModule() const { return vaeDecoder_; }

 private:
  StableDiffusion() = default;
  void verify();

  ModelConfig config_;
  c10::Device device_{c10::kCPU};
  c10::ScalarType dtype_ = c10::kFloat;
  std::shared_ptr<ScriptModule> textEncoder_, unet_, vaeEncoder_, vaeDecoder_;
  std::optional<NoiseSchedule> schedule_;
  std::optional<c10::ScalarType> autocast_;
};

}  // namespace torchedit
