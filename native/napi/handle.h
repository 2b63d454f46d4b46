// The one JS handle class template for the native objects JS holds, and its three kinds: tensor,
// module, model. The JS object is type-tagged (napi_type_tag_object), so anything else passed in
// its place is rejected, not reinterpreted; live handles are counted for memory(); dispose()
// frees the object now rather than at garbage collection (jobs still running hold their own
// reference).
#pragma once

#include <napi.h>
#include <torch/types.h>

#include <atomic>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/models/script_module.h"
#include "../core/models/stable_diffusion.h"
#include "addon.h"
#include "errors.h"

namespace torchedit::napi {

// A kind of handle: its tag and what it is called in messages.
struct HandleKind {
  napi_type_tag tag;
  const char* className;  // "NativeTensor": the JS class
  const char* expected;   // "a Tensor": what an argument must be
  const char* noun;       // "tensor": "The tensor was disposed"
  const char* factory;    // "the Tensor factories": how JS gets one
};

// What differs by what a handle owns: its device, and the bytes memory() reports (tensors only).
inline c10::Device deviceOf(const at::Tensor& t) { return t.device(); }
template <class T>
c10::Device deviceOf(const std::shared_ptr<T>& p) {
  return p->device();
}
inline int64_t bytesOf(const at::Tensor& t) { return static_cast<int64_t>(t.numel() * t.element_size()); }
template <class T>
int64_t bytesOf(const std::shared_ptr<T>&) {
  return 0;
}

template <class Owned, const HandleKind& Kind>
class Handle : public Napi::ObjectWrap<Handle<Owned, Kind>> {
  using Wrap = Napi::ObjectWrap<Handle>;

 public:
  using Static = Napi::Value (*)(const Napi::CallbackInfo&);
  // A getter or method: a function of the live object (the disposed check is done once, here).
  using Member = Napi::Value (*)(const Owned&, const Napi::CallbackInfo&);
  template <class Fn>
  using Named = std::initializer_list<std::pair<const char*, Fn>>;

  // Handles not yet disposed or collected, and the bytes they hold.
  static inline std::atomic<int64_t> live{0};
  static inline std::atomic<int64_t> liveBytes{0};

  // Defines the JS class with these static functions, getters and methods, plus `device`,
  // `disposed` and dispose(), and exports it.
  static void define(Napi::Env env, Napi::Object exports, Named<Static> statics, Named<Member> getters,
                     Named<Member> methods) {
    std::vector<Napi::ClassPropertyDescriptor<Handle>> properties;
    for (const auto& [name, fn] : statics) properties.push_back(Wrap::StaticMethod(name, fn));
    for (const auto& [name, fn] : getters) {
      properties.push_back(Wrap::InstanceAccessor(name, &Handle::callMember, nullptr, napi_default, keep(env, fn)));
    }
    for (const auto& [name, fn] : methods) {
      properties.push_back(Wrap::InstanceMethod(name, &Handle::callMember, napi_default, keep(env, fn)));
    }
    properties.push_back(
        Wrap::InstanceAccessor("device", &Handle::callMember, nullptr, napi_default, keep(env, &device)));
    properties.push_back(Wrap::InstanceAccessor("disposed", &Handle::Disposed, nullptr));
    properties.push_back(Wrap::InstanceMethod("dispose", &Handle::Dispose));
    Napi::Function ctor = Wrap::DefineClass(env, Kind.className, properties);
    state(env).constructors[&Kind.tag] = Napi::Persistent(ctor);
    exports.Set(Kind.className, ctor);
  }

  // A new JS handle owning `value` (main thread).
  static Napi::Object wrap(Napi::Env env, Owned value) {
    auto external = Napi::External<Owned>::New(env, new Owned(std::move(value)), [](Napi::Env, Owned* p) { delete p; });
    return state(env).constructors.at(&Kind.tag).New({external});
  }

  // The object behind a JS handle: ERR_INVALID_HANDLE for anything that is not one of these
  // handles, ERR_DISPOSED for a disposed one. `what` names the argument in the message.
  static Owned unwrap(Napi::Env env, Napi::Value value, const std::string& what) {
    if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&Kind.tag)) {
      throwError(env, code::kInvalidHandle,
                 std::string("Expected ") + Kind.expected + (what.empty() ? "" : " for " + what));
    }
    return Wrap::Unwrap(value.As<Napi::Object>())->get(env);
  }

  explicit Handle(const Napi::CallbackInfo& info) : Wrap(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throwError(info.Env(), code::kInvalidArgument,
                 std::string(Kind.className) + " cannot be constructed directly; use " + Kind.factory);
    }
    // Moved out of the External, which lives until GC: dispose() must free the object now.
    value_ = std::move(*info[0].As<Napi::External<Owned>>().Data());
    bytes_ = bytesOf(value_);
    info.This().As<Napi::Object>().TypeTag(&Kind.tag);
    live++;
    liveBytes += bytes_;
  }

  ~Handle() override { release(); }

 private:
  static void* keep(Napi::Env env, Member fn) {
    auto kept = std::make_shared<Member>(fn);
    state(env).kept.push_back(kept);
    return kept.get();
  }

  static Napi::Value device(const Owned& value, const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), deviceOf(value).str());
  }

  // The object; ERR_DISPOSED once disposed.
  const Owned& get(Napi::Env env) const {
    if (disposed_) throwError(env, code::kDisposed, std::string("The ") + Kind.noun + " was disposed");
    return value_;
  }

  Napi::Value callMember(const Napi::CallbackInfo& info) {
    Member fn = *static_cast<Member*>(info.Data());
    return fn(get(info.Env()), info);
  }

  void release() {
    if (disposed_) return;
    disposed_ = true;
    value_ = Owned();
    live--;
    liveBytes -= bytes_;
  }

  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed_); }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    release();
    return info.Env().Undefined();
  }

  Owned value_;
  int64_t bytes_ = 0;
  bool disposed_ = false;
};

inline constexpr HandleKind kTensorKind = {
    {0x7f3a1c2e5b9d4e81ULL, 0xa4c6e8f0b2d41357ULL}, "NativeTensor", "a Tensor", "tensor", "the Tensor factories"};
inline constexpr HandleKind kModuleKind = {
    {0x1b5e9a7c3d2f4086ULL, 0x95d3b1f7e2c4a608ULL}, "NativeModule", "a Module", "module", "loadModule()"};
inline constexpr HandleKind kModelKind = {
    {0x2c8e4a6f1d3b5097ULL, 0x8b1d3f5a7c9e2b40ULL}, "NativeModel", "a model handle", "model", "loadModel()"};

// A tensor: metadata is synchronous; data moves only on request, as a job on its device's queue
// (docs/architecture.md "Handles and memory").
using AddonTensor = Handle<at::Tensor, kTensorKind>;
// A TorchScript module on one device: loading, forward and train()/eval() are jobs on its queue.
using AddonModule = Handle<std::shared_ptr<ScriptModule>, kModuleKind>;
// A loaded bundle: every method is a job on its queue; the pipelines (pipelines.cc) take it first.
using AddonModel = Handle<std::shared_ptr<StableDiffusion>, kModelKind>;

// Define and export each class (AddonTensor.cc, AddonModule.cc, AddonModel.cc).
void InitTensor(Napi::Env env, Napi::Object exports);
void InitModule(Napi::Env env, Napi::Object exports);
void InitModel(Napi::Env env, Napi::Object exports);

}  // namespace torchedit::napi
