#include "AddonModel.h"

#include "../core/pipelines/text_to_image.h"
#include "../core/runtime/device.h"
#include "../core/runtime/dtype.h"
#include "AddonModule.h"
#include "AddonTensor.h"
#include "addon.h"
#include "convert.h"
#include "errors.h"
#include "jobs.h"

namespace torchedit::napi {

std::atomic<int64_t> AddonModel::liveHandles{0};

namespace {
constexpr napi_type_tag kModelTag = {0x2c8e4a6f1d3b5097ULL, 0x8b1d3f5a7c9e2b40ULL};

}  // namespace

void AddonModel::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "NativeModel",
      {
          StaticMethod<&AddonModel::Load>("load"),
          InstanceMethod<&AddonModel::EncodeText>("encodeText"),
          InstanceMethod<&AddonModel::EncodeImage>("encodeImage"),
          InstanceMethod<&AddonModel::DecodeLatents>("decodeLatents"),
          InstanceMethod<&AddonModel::TextToImage>("textToImage"),
          InstanceMethod<&AddonModel::Modules>("modules"),
          InstanceMethod<&AddonModel::Dispose>("dispose"),
          InstanceAccessor<&AddonModel::Device>("device"),
          InstanceAccessor<&AddonModel::Dtype>("dtype"),
          InstanceAccessor<&AddonModel::Disposed>("disposed"),
      });
  state(env).modelConstructor = Napi::Persistent(ctor);
  exports.Set("NativeModel", ctor);
}

AddonModel::AddonModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AddonModel>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throwError(info.Env(), code::kInvalidArgument, "NativeModel cannot be constructed directly; use loadModel()");
  }
  model_ = std::move(*info[0].As<Napi::External<std::shared_ptr<StableDiffusion>>>().Data());  // see AddonTensor
  info.This().As<Napi::Object>().TypeTag(&kModelTag);
  liveHandles++;
}

AddonModel::~AddonModel() {
  if (model_) liveHandles--;
}

std::shared_ptr<StableDiffusion> AddonModel::modelOf(Napi::Env env, Napi::Value value) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kModelTag)) {
    throwError(env, code::kInvalidHandle, "Expected a model handle");
  }
  return Unwrap(value.As<Napi::Object>())->live(env);
}

const std::shared_ptr<StableDiffusion>& AddonModel::live(Napi::Env env) const {
  if (!model_) throwError(env, code::kDisposed, "The model was disposed");
  return model_;
}

// load(dir, config, device, dtype | null, autocast | null, onProgress?)
Napi::Value AddonModel::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsObject() || !info[2].IsString()) {
    throwError(env, code::kInvalidArgument, "Expected (dir, config, device, dtype)");
  }
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  ModelConfig config = toModelConfig(env, info[1].As<Napi::Object>());
  ResolvedDevice target = guard(env, [&] { return resolveDevice(info[2].As<Napi::String>().Utf8Value()); });
  std::optional<c10::ScalarType> dtype;
  if (info[3].IsString()) dtype = guard(env, [&] { return dtypeFromName(info[3].As<Napi::String>().Utf8Value()); });
  std::optional<c10::ScalarType> autocast;
  if (info[4].IsString()) autocast = guard(env, [&] { return dtypeFromName(info[4].As<Napi::String>().Utf8Value()); });
  c10::Device device = target.device;
  return enqueueJob(env, target.name, [dir, config, device, dtype, autocast](JobContext&) -> ResultBuilder {
    auto model = StableDiffusion::load(dir, config, device, dtype);
    model->setAutocast(autocast);
    return [model](Napi::Env env) -> Napi::Value {
      auto external = Napi::External<std::shared_ptr<StableDiffusion>>::New(
          env, new std::shared_ptr<StableDiffusion>(model),
          [](Napi::Env, std::shared_ptr<StableDiffusion>* p) { delete p; });
      return state(env).modelConstructor.New({external});
    };
  }, info[5]);
}

namespace {
// Runs `fn(model)` as a job on the model's queue and resolves to the tensor it returns.
template <typename Fn>
Napi::Value tensorJob(Napi::Env env, std::shared_ptr<StableDiffusion> model, Napi::Value onProgress, Fn fn) {
  std::string device = model->device().str();
  return enqueueJob(env, device, [model, fn](JobContext& job) -> ResultBuilder {
    job.check();
    torch::Tensor out = fn(*model, job);
    return [out](Napi::Env env) -> Napi::Value { return AddonTensor::wrap(env, out); };
  }, onProgress);
}
}  // namespace

Napi::Value AddonModel::EncodeText(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor ids = AddonTensor::tensorOf(env, info[0], "ids");
  return tensorJob(env, live(env), env.Undefined(), [ids](StableDiffusion& m, JobContext&) {
    torch::NoGradGuard noGrad;
    return m.encodeText(ids);
  });
}

// encodeImage(image, sample: boolean, seed: bigint | null)
Napi::Value AddonModel::EncodeImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor image = AddonTensor::tensorOf(env, info[0], "image");
  bool sample = info[1].ToBoolean().Value();
  std::optional<uint64_t> seed;
  if (info[2].IsBigInt()) {
    bool lossless = false;
    seed = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
  }
  return tensorJob(env, live(env), env.Undefined(), [image, sample, seed](StableDiffusion& m, JobContext&) {
    torch::NoGradGuard noGrad;
    return m.encodeImage(image, sample, seed);
  });
}

Napi::Value AddonModel::DecodeLatents(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor latents = AddonTensor::tensorOf(env, info[0], "latents");
  return tensorJob(env, live(env), env.Undefined(), [latents](StableDiffusion& m, JobContext&) {
    torch::NoGradGuard noGrad;
    return m.decodeLatents(latents);
  });
}

// textToImage(context, unconditional, options, onProgress?)
Napi::Value AddonModel::TextToImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor context = AddonTensor::tensorOf(env, info[0], "context");
  torch::Tensor uncond = AddonTensor::tensorOf(env, info[1], "unconditional");
  if (!info[2].IsObject()) throwError(env, code::kInvalidArgument, "Expected an options object");
  TextToImageOptions options = toTextToImageOptions(env, info[2].As<Napi::Object>());
  return tensorJob(env, live(env), info[3], [context, uncond, options](StableDiffusion& m, JobContext& job) {
    return textToImage(m, context, uncond, options, job);
  });
}

// modules() -> { textEncoder, unet, vaeEncoder, vaeDecoder } as Module handles sharing the model's weights.
Napi::Value AddonModel::Modules(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& model = live(env);
  Napi::Object out = Napi::Object::New(env);
  out.Set("textEncoder", AddonModule::wrap(env, model->textEncoderModule()));
  out.Set("unet", AddonModule::wrap(env, model->unetModule()));
  out.Set("vaeEncoder", AddonModule::wrap(env, model->vaeEncoderModule()));
  out.Set("vaeDecoder", AddonModule::wrap(env, model->vaeDecoderModule()));
  return out;
}

Napi::Value AddonModel::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), live(info.Env())->device().str());
}

Napi::Value AddonModel::Dtype(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::String::New(env, guard(env, [&] { return dtypeName(live(env)->dtype()); }));
}

Napi::Value AddonModel::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !model_);
}

Napi::Value AddonModel::Dispose(const Napi::CallbackInfo& info) {
  if (model_) {
    model_.reset();
    liveHandles--;
  }
  return info.Env().Undefined();
}

}  // namespace torchedit::napi
