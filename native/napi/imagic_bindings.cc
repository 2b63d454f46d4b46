// Imagic jobs on a model's queue: train (stages A and B), generate (stage C), and the loss
// gradient of one step (for the gradient check against Python). The result's state lives in JS
// handles (lib/pipelines/imagic/): two embedding tensors and the fine-tuned UNet as a Module.
#include "imagic_bindings.h"

#include "../core/edit/imagic.h"
#include "AddonModel.h"
#include "AddonModule.h"
#include "AddonTensor.h"
#include "convert.h"
#include "errors.h"
#include "jobs.h"

namespace torchedit::napi {

namespace {

Napi::Float32Array toFloat32Array(Napi::Env env, const std::vector<float>& values) {
  Napi::Float32Array out = Napi::Float32Array::New(env, values.size());
  std::copy(values.begin(), values.end(), out.Data());
  return out;
}

ImagicStage toStage(Napi::Object o) {
  return ImagicStage{o.Get("steps").ToNumber().Int64Value(), o.Get("lr").ToNumber().DoubleValue()};
}

// train(model, x0, targetEmbedding, { embedding: {steps, lr}, finetune: {steps, lr}, seed }, onProgress?)
//   -> { targetEmbedding, optimizedEmbedding, unet, embeddingLosses, finetuneLosses }
Napi::Value Train(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = AddonModel::modelOf(env, info[0]);
  torch::Tensor x0 = AddonTensor::tensorOf(env, info[1], "x0");
  torch::Tensor target = AddonTensor::tensorOf(env, info[2], "targetEmbedding");
  Napi::Object o = info[3].As<Napi::Object>();
  ImagicTrainOptions options;
  options.embedding = toStage(o.Get("embedding").As<Napi::Object>());
  options.finetune = toStage(o.Get("finetune").As<Napi::Object>());
  options.seed = toSeed(env, o.Get("seed"));
  return enqueueJob(env, model->device().str(), [=](JobContext& job) -> ResultBuilder {
    auto state = std::make_shared<ImagicState>(trainImagic(*model, x0, target, options, job));
    return [state](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("targetEmbedding", AddonTensor::wrap(env, state->targetEmbedding));
      out.Set("optimizedEmbedding", AddonTensor::wrap(env, state->optimizedEmbedding));
      out.Set("unet", AddonModule::wrap(env, state->unet));
      out.Set("embeddingLosses", toFloat32Array(env, state->embeddingLosses));
      out.Set("finetuneLosses", toFloat32Array(env, state->finetuneLosses));
      return out;
    };
  }, info[4]);
}

// generate(model, unet, targetEmbedding, optimizedEmbedding, eta, unconditional, textToImageOptions, onProgress?)
Napi::Value Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = AddonModel::modelOf(env, info[0]);
  ImagicState state;
  state.unet = AddonModule::moduleOf(env, info[1], "unet");
  state.targetEmbedding = AddonTensor::tensorOf(env, info[2], "targetEmbedding");
  state.optimizedEmbedding = AddonTensor::tensorOf(env, info[3], "optimizedEmbedding");
  double eta = info[4].ToNumber().DoubleValue();
  torch::Tensor uncond = AddonTensor::tensorOf(env, info[5], "unconditional");
  TextToImageOptions options = toTextToImageOptions(env, info[6].As<Napi::Object>());
  return enqueueJob(env, model->device().str(), [=](JobContext& job) -> ResultBuilder {
    torch::Tensor latents = imagicGenerate(*model, state, eta, uncond, options, job);
    return [latents](Napi::Env env) -> Napi::Value { return AddonTensor::wrap(env, latents); };
  }, info[7]);
}

// lossGradient(model, x0, embedding, t, noise) -> [loss, d loss / d embedding] with the bundle's UNet.
Napi::Value LossGradient(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = AddonModel::modelOf(env, info[0]);
  torch::Tensor x0 = AddonTensor::tensorOf(env, info[1], "x0");
  torch::Tensor embedding = AddonTensor::tensorOf(env, info[2], "embedding");
  int64_t t = info[3].ToNumber().Int64Value();
  torch::Tensor noise = AddonTensor::tensorOf(env, info[4], "noise");
  return enqueueJob(env, model->device().str(), [=](JobContext&) -> ResultBuilder {
    torch::AutoGradMode gradMode(true);
    torch::Tensor e = embedding.to(model->device(), torch::kFloat).detach().clone().set_requires_grad(true);
    torch::Tensor loss = imagicLoss(*model, nullptr, x0.to(model->device()), e, t, noise.to(model->device()));
    loss.backward();
    torch::Tensor lossValue = loss.detach(), grad = e.grad().detach();
    return [lossValue, grad](Napi::Env env) -> Napi::Value {
      Napi::Array out = Napi::Array::New(env, 2);
      out.Set(0u, AddonTensor::wrap(env, lossValue));
      out.Set(1u, AddonTensor::wrap(env, grad));
      return out;
    };
  }, env.Undefined());
}

}  // namespace

void InitImagic(Napi::Env env, Napi::Object exports) {
  Napi::Object imagic = Napi::Object::New(env);
  imagic.Set("train", Napi::Function::New<Train>(env, "train"));
  imagic.Set("generate", Napi::Function::New<Generate>(env, "generate"));
  imagic.Set("lossGradient", Napi::Function::New<LossGradient>(env, "lossGradient"));
  exports.Set("imagic", imagic);
}

}  // namespace torchedit::napi
