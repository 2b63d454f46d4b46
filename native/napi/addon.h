// Per-environment state of the addon: its handle classes (handle.h) by tag, and export helpers.
#pragma once

#include <napi.h>

#include <initializer_list>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace torchedit::napi {

struct AddonState {
  std::unordered_map<const napi_type_tag*, Napi::FunctionReference> constructors;
  std::vector<std::shared_ptr<void>> kept;  // what the classes' callbacks get as their data
};

AddonState& state(Napi::Env env);

using Callback = Napi::Value (*)(const Napi::CallbackInfo&);
using NamedCallbacks = std::initializer_list<std::pair<const char*, Callback>>;
// Sets each function on `target`; with a `name`, on a new object exports[name] instead.
void exportFunctions(Napi::Env env, Napi::Object target, NamedCallbacks functions);
void exportFunctions(Napi::Env env, Napi::Object exports, const char* name, NamedCallbacks functions);

}  // namespace torchedit::napi
