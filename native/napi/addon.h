// Per-environment state of the addon: the constructors of its classes.
#pragma once

#include <napi.h>

namespace torchedit::napi {

struct AddonState {
  Napi::FunctionReference tensorConstructor;
  Napi::FunctionReference moduleConstructor;
  Napi::FunctionReference modelConstructor;
};

AddonState& state(Napi::Env env);

}  // namespace torchedit::napi
