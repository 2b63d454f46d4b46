// The model handle: a loaded bundle (core StableDiffusion). Every method is a job on the
// model's device queue; the pipelines' loops run there in one call each.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include "../core/models/stable_diffusion.h"

namespace torchedit::napi {

class AddonModel : public Napi::ObjectWrap<AddonModel> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static std::shared_ptr<StableDiffusion> modelOf(Napi::Env env, Napi::Value value);

  explicit AddonModel(const Napi::CallbackInfo& info);
  ~AddonModel() override;

  static std::atomic<int64_t> liveHandles;

 private:
  static Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value EncodeText(const Napi::CallbackInfo& info);
  Napi::Value EncodeImage(const Napi::CallbackInfo& info);
  Napi::Value DecodeLatents(const Napi::CallbackInfo& info);
  Napi::Value TextToImage(const Napi::CallbackInfo& info);
  Napi::Value Modules(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  const std::shared_ptr<StableDiffusion>& live(Napi::Env env) const;

  std::shared_ptr<StableDiffusion> model_;
};

}  // namespace torchedit::napi
