// The model handle's JS members; the class is AddonModel in handle.h. The pipelines are in pipelines.cc.
#include "../core/runtime/device.h"
#include "../core/runtime/dtype.h"
#include "convert.h"
#include "errors.h"
#include "handle.h"
#include "jobs.h"
#include "options.h"

namespace torchedit::napi {

namespace {

// load(dir, config, device, dtype | null, autocast | null, onProgress?)
Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsObject() || !info[2].IsString()) {
    throwError(env, code::kInvalidArgument, "Expected (dir, config, device, dtype)");
  }
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  auto config = readOptions<ModelConfig>(env, info[1], "config");
  ResolvedDevice target = guard(env, [&] { return resolveDevice(info[2].As<Napi::String>().Utf8Value()); });
  std::optional<c10::ScalarType> dtype;
  if (info[3].IsString()) dtype = guard(env, [&] { return dtypeFromName(info[3].As<Napi::String>().Utf8Value()); });
  std::optional<c10::ScalarType> autocast;
  if (info[4].IsString()) autocast = guard(env, [&] { return dtypeFromName(info[4].As<Napi::String>().Utf8Value()); });
  c10::Device device = target.device;
  return enqueue(env, target.name, info[5], [dir, config, device, dtype, autocast](JobContext&) {
    auto model = StableDiffusion::load(dir, config, device, dtype);
    model->setAutocast(autocast);
    return model;
  });
}

// Runs fn(model) without autograd as a job on the model's queue; resolves to the tensor it returns.
template <class Fn>
Napi::Value inference(const std::shared_ptr<StableDiffusion>& model, Napi::Env env, Fn fn) {
  return enqueue(env, model->device().str(), env.Undefined(), [model, fn](JobContext&) {
    torch::NoGradGuard noGrad;
    return fn(*model);
  });
}

Napi::Value EncodeText(const std::shared_ptr<StableDiffusion>& model, const Napi::CallbackInfo& info) {
  torch::Tensor ids = AddonTensor::unwrap(info.Env(), info[0], "ids");
  return inference(model, info.Env(), [ids](StableDiffusion& m) { return m.encodeText(ids); });
}

// encodeImage(image, sample: boolean, seed: bigint | null)
Napi::Value EncodeImage(const std::shared_ptr<StableDiffusion>& model, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor image = AddonTensor::unwrap(env, info[0], "image");
  bool sample = info[1].ToBoolean().Value();
  std::optional<uint64_t> seed;
  if (!info[2].IsNull()) seed = toSeed(env, info[2], "seed");
  return inference(model, env,
                   [image, sample, seed](StableDiffusion& m) { return m.encodeImage(image, sample, seed); });
}

Napi::Value DecodeLatents(const std::shared_ptr<StableDiffusion>& model, const Napi::CallbackInfo& info) {
  torch::Tensor latents = AddonTensor::unwrap(info.Env(), info[0], "latents");
  return inference(model, info.Env(), [latents](StableDiffusion& m) { return m.decodeLatents(latents); });
}

// modules() -> { textEncoder, unet, vaeEncoder, vaeDecoder } as Module handles sharing the model's weights.
Napi::Value Modules(const std::shared_ptr<StableDiffusion>& model, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("textEncoder", toJs(env, model->textEncoderModule()));
  out.Set("unet", toJs(env, model->unetModule()));
  out.Set("vaeEncoder", toJs(env, model->vaeEncoderModule()));
  out.Set("vaeDecoder", toJs(env, model->vaeDecoderModule()));
  return out;
}

Napi::Value Dtype(const std::shared_ptr<StableDiffusion>& model, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::String::New(env, guard(env, [&] { return dtypeName(model->dtype()); }));
}

}  // namespace

void InitModel(Napi::Env env, Napi::Object exports) {
  AddonModel::define(env, exports, {{"load", Load}}, {{"dtype", Dtype}},
                     {{"encodeText", EncodeText},
                      {"encodeImage", EncodeImage},
                      {"decodeLatents", DecodeLatents},
                      {"modules", Modules}});
}

}  // namespace torchedit::napi
