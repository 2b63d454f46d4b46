#include "AddonModule.h"

#include "../core/runtime/device.h"
#include "AddonTensor.h"
#include "addon.h"
#include "convert.h"
#include "errors.h"
#include "jobs.h"

namespace torchedit::napi {

std::atomic<int64_t> AddonModule::liveHandles{0};

namespace {
constexpr napi_type_tag kModuleTag = {0x1b5e9a7c3d2f4086ULL, 0x95d3b1f7e2c4a608ULL};
}

void AddonModule::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "NativeModule",
      {
          StaticMethod<&AddonModule::Load>("load"),
          InstanceMethod<&AddonModule::Forward>("forward"),
          InstanceMethod<&AddonModule::SetTraining>("setTraining"),
          InstanceMethod<&AddonModule::Save>("save"),
          InstanceMethod<&AddonModule::Parameters>("parameters"),
          InstanceMethod<&AddonModule::Dispose>("dispose"),
          InstanceAccessor<&AddonModule::Path>("path"),
          InstanceAccessor<&AddonModule::Device>("device"),
          InstanceAccessor<&AddonModule::ParameterCount>("parameterCount"),
          InstanceAccessor<&AddonModule::ParameterNames>("parameterNames"),
          InstanceAccessor<&AddonModule::Disposed>("disposed"),
      });
  state(env).moduleConstructor = Napi::Persistent(ctor);
  exports.Set("NativeModule", ctor);
}

Napi::Object AddonModule::wrap(Napi::Env env, std::shared_ptr<ScriptModule> module) {
  auto external = Napi::External<std::shared_ptr<ScriptModule>>::New(
      env, new std::shared_ptr<ScriptModule>(std::move(module)),
      [](Napi::Env, std::shared_ptr<ScriptModule>* p) { delete p; });
  return state(env).moduleConstructor.New({external});
}

AddonModule::AddonModule(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AddonModule>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throwError(info.Env(), code::kInvalidArgument,
               "NativeModule cannot be constructed directly; use loadModule()");
  }
  module_ = std::move(*info[0].As<Napi::External<std::shared_ptr<ScriptModule>>>().Data());  // see AddonTensor
  info.This().As<Napi::Object>().TypeTag(&kModuleTag);
  liveHandles++;
}

AddonModule::~AddonModule() { release(); }

void AddonModule::release() {
  if (!module_) return;
  module_.reset();  // jobs still running hold their own reference
  liveHandles--;
}

std::shared_ptr<ScriptModule> AddonModule::moduleOf(Napi::Env env, Napi::Value value,
                                                    const std::string& what) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kModuleTag)) {
    throwError(env, code::kInvalidHandle, "Expected a Module for " + what);
  }
  return Unwrap(value.As<Napi::Object>())->live(env);
}

const std::shared_ptr<ScriptModule>& AddonModule::live(Napi::Env env) const {
  if (!module_) throwError(env, code::kDisposed, "The module was disposed");
  return module_;
}

// load(path, device, onProgress?) -> { promise, cancel }
Napi::Value AddonModule::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsString()) {
    throwError(env, code::kInvalidArgument, "Expected (path, device)");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  ResolvedDevice target = guard(env, [&] { return resolveDevice(info[1].As<Napi::String>().Utf8Value()); });
  c10::Device device = target.device;
  return enqueueJob(env, target.name, [path, device](JobContext&) -> ResultBuilder {
    auto module = ScriptModule::load(path, device);
    return [module](Napi::Env env) -> Napi::Value { return wrap(env, module); };
  }, info[2]);
}

// forward(args: Array, onProgress?) -> { promise, cancel }. Tensor inputs are moved to the
// module's device on the worker, so callers need not care where a tensor lives.
Napi::Value AddonModule::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<ScriptModule> module = live(env);
  if (!info[0].IsArray()) throwError(env, code::kInvalidArgument, "Expected an array of arguments");
  std::vector<c10::IValue> inputs = toIValues(env, info[0].As<Napi::Array>());
  return enqueueJob(env, module->device().str(), [module, inputs](JobContext& job) -> ResultBuilder {
    job.check();
    torch::NoGradGuard noGrad;  // module calls from JS are inference
    std::vector<c10::IValue> onDevice;
    onDevice.reserve(inputs.size());
    for (const auto& v : inputs) {
      onDevice.push_back(v.isTensor() ? c10::IValue(v.toTensor().to(module->device())) : v);
    }
    c10::IValue out = module->forward(std::move(onDevice));
    return [out](Napi::Env env) -> Napi::Value { return fromIValue(env, out); };
  }, info[1]);
}

Napi::Value AddonModule::SetTraining(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<ScriptModule> module = live(env);
  bool on = info[0].ToBoolean().Value();
  return enqueueJob(env, module->device().str(), [module, on](JobContext&) -> ResultBuilder {
    module->setTraining(on);
    return nullptr;
  }, env.Undefined());
}

// save(path): torch.jit.save of the module, as a job (a fine-tuned UNet can be gigabytes).
Napi::Value AddonModule::Save(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<ScriptModule> module = live(env);
  if (!info[0].IsString()) throwError(env, code::kInvalidArgument, "Expected a path");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return enqueueJob(env, module->device().str(), [module, path](JobContext&) -> ResultBuilder {
    module->save(path);
    return nullptr;
  }, env.Undefined());
}

// parameters() -> { name: Tensor } copies of every parameter, taken in queue order.
Napi::Value AddonModule::Parameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<ScriptModule> module = live(env);
  return enqueueJob(env, module->device().str(), [module](JobContext&) -> ResultBuilder {
    std::vector<std::pair<std::string, torch::Tensor>> params;
    for (const auto& p : module->module().named_parameters(true)) params.emplace_back(p.name, p.value.detach().clone());
    return [params](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      for (const auto& [name, value] : params) out.Set(name, AddonTensor::wrap(env, value));
      return out;
    };
  }, env.Undefined());
}

Napi::Value AddonModule::Path(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), live(info.Env())->path());
}

Napi::Value AddonModule::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), live(info.Env())->device().str());
}

Napi::Value AddonModule::ParameterCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env())->parameterCount()));
}

Napi::Value AddonModule::ParameterNames(const Napi::CallbackInfo& info) {
  const auto& names = live(info.Env())->parameterNames();
  Napi::Array array = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); ++i) array.Set(i, names[i]);
  return array;
}

Napi::Value AddonModule::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !module_);
}

Napi::Value AddonModule::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

}  // namespace torchedit::napi
