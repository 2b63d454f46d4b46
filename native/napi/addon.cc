// Module init: registers each class and the runtime functions; no logic of its own.
#include "addon.h"

#include <torch/version.h>
#include <ATen/Parallel.h>

#include "../core/runtime/device.h"
#include "../core/runtime/job_queue.h"
#include "AddonModel.h"
#include "AddonModule.h"
#include "AddonTensor.h"
#include "errors.h"
#include "imagic_bindings.h"
#include "ledits_bindings.h"
#include "testing.h"

namespace torchedit::napi {

AddonState& state(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

namespace {

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("torchVersion", std::to_string(TORCH_VERSION_MAJOR) + "." +
                              std::to_string(TORCH_VERSION_MINOR) + "." +
                              std::to_string(TORCH_VERSION_PATCH));
  out.Set("cxx11Abi", Napi::Boolean::New(env, _GLIBCXX_USE_CXX11_ABI != 0));
  out.Set("cudaAvailable", Napi::Boolean::New(env, cudaAvailable()));
  out.Set("cudaDeviceCount", static_cast<double>(cudaAvailable() ? cudaDeviceCount() : 0));
  out.Set("intraOpThreads", static_cast<double>(at::get_num_threads()));
  out.Set("parallelInfo", at::get_parallel_info());
  return out;
}

// resolveDevice(name) -> { name, fallback? }: validates a device name without running a job.
Napi::Value ResolveDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string requested = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  ResolvedDevice d = guard(env, [&] { return resolveDevice(requested); });
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", d.name);
  if (!d.fallback.empty()) out.Set("fallback", d.fallback);
  return out;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  setIntraOpThreads(info[0].ToNumber().Int32Value());
  return info.Env().Undefined();
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("liveTensors", static_cast<double>(AddonTensor::liveHandles.load()));
  out.Set("tensorBytes", static_cast<double>(AddonTensor::liveBytes.load()));
  out.Set("liveModules", static_cast<double>(AddonModule::liveHandles.load()));
  out.Set("liveModels", static_cast<double>(AddonModel::liveHandles.load()));
  return out;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonState());
  // Workers must stop before the environment's handles go away.
  env.AddCleanupHook([] { shutdownAllQueues(); });
  AddonTensor::Init(env, exports);
  AddonModule::Init(env, exports);
  AddonModel::Init(env, exports);
  InitLedits(env, exports);
  InitImagic(env, exports);
  InitTesting(env, exports);
  exports.Set("runtimeInfo", Napi::Function::New<RuntimeInfo>(env, "runtimeInfo"));
  exports.Set("resolveDevice", Napi::Function::New<ResolveDevice>(env, "resolveDevice"));
  exports.Set("setThreads", Napi::Function::New<SetThreads>(env, "setThreads"));
  exports.Set("memory", Napi::Function::New<Memory>(env, "memory"));
  return exports;
}

}  // namespace torchedit::napi

static Napi::Object InitTorchedit(Napi::Env env, Napi::Object exports) {
  return torchedit::napi::Init(env, exports);
}

NODE_API_MODULE(torchedit, InitTorchedit)
