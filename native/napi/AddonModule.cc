// The module handle's JS members; the class is AddonModule in handle.h.
#include <optional>
#include <unordered_set>

#include "../core/runtime/device.h"
#include "convert.h"
#include "errors.h"
#include "handle.h"
#include "jobs.h"

namespace torchedit::napi {

namespace {

// load(path, device, onProgress?) -> { promise, cancel }
Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsString()) {
    throwError(env, code::kInvalidArgument, "Expected (path, device)");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  ResolvedDevice target = guard(env, [&] { return resolveDevice(info[1].As<Napi::String>().Utf8Value()); });
  c10::Device device = target.device;
  return enqueue(env, target.name, info[2], [path, device](JobContext&) { return ScriptModule::load(path, device); });
}

// forward(args: Array, onProgress?) -> { promise, cancel }. Tensor inputs are moved to the
// module's device on the worker, so callers need not care where a tensor lives.
Napi::Value Forward(const std::shared_ptr<ScriptModule>& module, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throwError(env, code::kInvalidArgument, "Expected an array of arguments");
  std::vector<c10::IValue> inputs = toIValues(env, info[0].As<Napi::Array>());
  return enqueue(env, module->device().str(), info[1], [module, inputs](JobContext& job) {
    job.check();
    torch::NoGradGuard noGrad;  // module calls from JS are inference
    std::vector<c10::IValue> onDevice;
    onDevice.reserve(inputs.size());
    for (const auto& v : inputs) {
      onDevice.push_back(v.isTensor() ? c10::IValue(v.toTensor().to(module->device())) : v);
    }
    return module->forward(std::move(onDevice));
  });
}

Napi::Value SetTraining(const std::shared_ptr<ScriptModule>& module, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool on = info[0].ToBoolean().Value();
  return enqueue(env, module->device().str(), env.Undefined(), [module, on](JobContext&) { module->setTraining(on); });
}

// save(path): torch.jit.save of the module, as a job (a fine-tuned UNet can be gigabytes).
Napi::Value Save(const std::shared_ptr<ScriptModule>& module, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throwError(env, code::kInvalidArgument, "Expected a path");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return enqueue(env, module->device().str(), env.Undefined(), [module, path](JobContext&) { module->save(path); });
}

// parameters(names?) -> { name: Tensor } copies of every parameter (or of those named), taken in
// queue order.
Napi::Value Parameters(const std::shared_ptr<ScriptModule>& module, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::optional<std::unordered_set<std::string>> only;
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsArray()) throwError(env, code::kInvalidArgument, "Expected an array of parameter names");
    Napi::Array names = info[0].As<Napi::Array>();
    only.emplace();
    for (uint32_t i = 0; i < names.Length(); ++i) only->insert(names.Get(i).ToString().Utf8Value());
  }
  return enqueue(env, module->device().str(), env.Undefined(), [module, only](JobContext&) {
    std::vector<std::pair<std::string, torch::Tensor>> params;
    for (const auto& p : module->module().named_parameters(true)) {
      if (!only || only->count(p.name)) params.emplace_back(p.name, p.value.detach().clone());
    }
    return params;
  });
}

// withParameters(names, tensors) -> a module holding these tensors as the named parameters and
// sharing every other one with this module (ScriptModule::withParameters).
Napi::Value WithParameters(const std::shared_ptr<ScriptModule>& module, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray() || !info[1].IsArray() ||
      info[0].As<Napi::Array>().Length() != info[1].As<Napi::Array>().Length()) {
    throwError(env, code::kInvalidArgument, "Expected (names, tensors) of the same length");
  }
  Napi::Array names = info[0].As<Napi::Array>(), tensors = info[1].As<Napi::Array>();
  std::vector<std::pair<std::string, torch::Tensor>> replacements;
  for (uint32_t i = 0; i < names.Length(); ++i) {
    std::string name = names.Get(i).ToString().Utf8Value();
    replacements.emplace_back(name, AddonTensor::unwrap(env, tensors.Get(i), name).detach());
  }
  return enqueue(env, module->device().str(), env.Undefined(),
                 [module, replacements](JobContext&) { return module->withParameters(replacements); });
}

Napi::Value Path(const std::shared_ptr<ScriptModule>& module, const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), module->path());
}

Napi::Value ParameterCount(const std::shared_ptr<ScriptModule>& module, const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(module->parameterCount()));
}

Napi::Value ParameterNames(const std::shared_ptr<ScriptModule>& module, const Napi::CallbackInfo& info) {
  const auto& names = module->parameterNames();
  Napi::Array array = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); ++i) array.Set(i, names[i]);
  return array;
}

// Attention chains the load-time graph pass replaced with the fused kernel (0: none, or turned off).
Napi::Value FusedAttentionSites(const std::shared_ptr<ScriptModule>& module, const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(module->fusedAttentionSites()));
}

}  // namespace

void InitModule(Napi::Env env, Napi::Object exports) {
  AddonModule::define(env, exports, {{"load", Load}},
                      {{"path", Path},
                       {"parameterCount", ParameterCount},
                       {"parameterNames", ParameterNames},
                       {"fusedAttentionSites", FusedAttentionSites}},
                      {{"forward", Forward},
                       {"setTraining", SetTraining},
                       {"save", Save},
                       {"parameters", Parameters},
                       {"withParameters", WithParameters}});
}

}  // namespace torchedit::napi
