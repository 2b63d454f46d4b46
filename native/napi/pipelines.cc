#include "pipelines.h"

#include "../core/edit/imagic.h"
#include "../core/edit/imagic_eta.h"
#include "../core/edit/ledits.h"
#include "../core/pipelines/text_to_image.h"
#include "handle.h"
#include "addon.h"
#include "errors.h"

namespace torchedit::napi {

ModelCall::ModelCall(const Napi::CallbackInfo& info)
    : info_(info), env_(info.Env()), model_(AddonModel::unwrap(env_, info[0], "")) {}

torch::Tensor ModelCall::tensor(const char* what) { return AddonTensor::unwrap(env_, info_[next_++], what); }

torch::Tensor ModelCall::optionalTensor(const char* what) {
  if (info_[next_].IsNull()) {
    next_++;
    return torch::Tensor();
  }
  return tensor(what);
}

std::shared_ptr<ScriptModule> ModelCall::module(const char* what) {
  return AddonModule::unwrap(env_, info_[next_++], what);
}

int64_t ModelCall::integer(const char* what) {
  Napi::Value v = info_[next_++];
  if (!v.IsNumber()) throwError(env_, code::kInvalidArgument, std::string("Expected an integer for ") + what);
  return v.As<Napi::Number>().Int64Value();
}

std::vector<std::string> ModelCall::strings(const char* what) {
  Napi::Value v = info_[next_++];
  if (!v.IsArray()) throwError(env_, code::kInvalidArgument, std::string("Expected an array of strings for ") + what);
  Napi::Array items = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < items.Length(); ++i) {
    if (!items.Get(i).IsString()) throwError(env_, code::kInvalidArgument, std::string("Expected strings in ") + what);
    out.push_back(items.Get(i).As<Napi::String>().Utf8Value());
  }
  return out;
}

namespace {

// The bindings below are alike on purpose (one calling convention, read by ModelCall): each
// states only its own arguments and the core function it runs.

// textToImage(model, context, unconditional, options, onProgress?) -> latents
Napi::Value TextToImage(const Napi::CallbackInfo& info) {
  ModelCall call(info);
  torch::Tensor context = call.tensor("context"), uncond = call.tensor("unconditional");
  auto options = call.options<TextToImageOptions>();
  return call.run([=](StableDiffusion& m, JobContext& job) { return textToImage(m, context, uncond, options, job); });
}

// invert(model, x0, unconditional, source | null, options, onProgress?) -> [timesteps, xts, zs]
Napi::Value Invert(const Napi::CallbackInfo& info) {
  ModelCall call(info);
  torch::Tensor x0 = call.tensor("x0"), uncond = call.tensor("unconditional"), source = call.optionalTensor("source");
  auto options = call.options<InversionOptions>();
  return call.run([=](StableDiffusion& m, JobContext& job) { return invert(m, x0, uncond, source, options, job); });
}

// edit(model, x0, timesteps, xts, zs, unconditional, target | null, concepts | null, userMask | null, options,
//      onProgress?) -> [latents, masks | null]
Napi::Value Edit(const Napi::CallbackInfo& info) {
  ModelCall call(info);
  Inversion inversion;
  inversion.x0 = call.tensor("x0");
  inversion.timesteps = call.tensor("timesteps");
  inversion.xts = call.tensor("xts");
  inversion.zs = call.tensor("zs");
  torch::Tensor uncond = call.tensor("unconditional"), target = call.optionalTensor("target"),
                concepts = call.optionalTensor("concepts"), userMask = call.optionalTensor("userMask");
  auto options = call.options<EditOptions>();
  return call.run([=](StableDiffusion& m, JobContext& job) {
    return ledits(m, inversion, uncond, target, concepts, userMask, options, job);
  });
}

// imagicTrain(model, x0, targetEmbedding, options, onProgress?)
//   -> { targetEmbedding, optimizedEmbedding, unet, embeddingLosses, finetuneLosses }
Napi::Value ImagicTrain(const Napi::CallbackInfo& info) {
  ModelCall call(info);
  torch::Tensor x0 = call.tensor("x0"), target = call.tensor("targetEmbedding");
  auto options = call.options<ImagicTrainOptions>();
  return call.run([=](StableDiffusion& m, JobContext& job) { return trainImagic(m, x0, target, options, job); });
}

// imagicGenerate(model, unet, targetEmbedding, optimizedEmbedding, unconditional, options, onProgress?) -> latents
Napi::Value ImagicGenerate(const Napi::CallbackInfo& info) {
  ModelCall call(info);
  ImagicState state;
  state.unet = call.module("unet");
  state.targetEmbedding = call.tensor("targetEmbedding");
  state.optimizedEmbedding = call.tensor("optimizedEmbedding");
  torch::Tensor uncond = call.tensor("unconditional");
  auto options = call.options<ImagicGenerateOptions>();
  return call.run([=](StableDiffusion& m, JobContext& job) { return imagicGenerate(m, state, uncond, options, job); });
}

// imagicEtaScores(model, unet, targetEmbedding, optimizedEmbedding, candidates, x0, options, onProgress?)
//   -> [N, 2] float64: each candidate's [gain, distance] (core/edit/imagic_eta.h)
Napi::Value ImagicEtaScores(const Napi::CallbackInfo& info) {
  ModelCall call(info);
  ImagicState state;
  state.unet = call.module("unet");
  state.targetEmbedding = call.tensor("targetEmbedding");
  state.optimizedEmbedding = call.tensor("optimizedEmbedding");
  torch::Tensor candidates = call.tensor("candidates"), x0 = call.tensor("x0");
  auto options = call.options<ImagicEtaScoreOptions>();
  return call.run(
      [=](StableDiffusion& m, JobContext& job) { return imagicEtaScores(m, state, candidates, x0, options, job); });
}

}  // namespace

void InitPipelines(Napi::Env env, Napi::Object exports) {
  exportFunctions(env, exports, "pipelines",
                  {{"textToImage", TextToImage},
                   {"invert", Invert},
                   {"edit", Edit},
                   {"imagicTrain", ImagicTrain},
                   {"imagicGenerate", ImagicGenerate},
                   {"imagicEtaScores", ImagicEtaScores}});
}

}  // namespace torchedit::napi
