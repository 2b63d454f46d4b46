// The module handle: a TorchScript module loaded on one device. Loading, forward and
// train()/eval() are jobs on that device's queue, so they run in order with other work on it.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include "../core/models/script_module.h"

namespace torchedit::napi {

class AddonModule : public Napi::ObjectWrap<AddonModule> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::Object wrap(Napi::Env env, std::shared_ptr<ScriptModule> module);
  // The module behind a JS handle; ERR_INVALID_HANDLE / ERR_DISPOSED otherwise.
  static std::shared_ptr<ScriptModule> moduleOf(Napi::Env env, Napi::Value value,
                                                const std::string& what);

  explicit AddonModule(const Napi::CallbackInfo& info);
  ~AddonModule() override;

  static std::atomic<int64_t> liveHandles;

 private:
  static Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value SetTraining(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value Parameters(const Napi::CallbackInfo& info);
  Napi::Value Path(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value ParameterCount(const Napi::CallbackInfo& info);
  Napi::Value ParameterNames(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  const std::shared_ptr<ScriptModule>& live(Napi::Env env) const;
  void release();

  std::shared_ptr<ScriptModule> module_;
};

}  // namespace torchedit::napi
