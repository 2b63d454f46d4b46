// torchedit::Error -> JS Error with a `code`. The TS layer re-wraps it in TorchEditError with the
// caller's stack (lib/errors.ts), so messages here are plain sentences.
#pragma once

#include <napi.h>

#include "../core/runtime/error.h"

namespace torchedit::napi {

Napi::Error makeError(Napi::Env env, const char* code, const std::string& message);
[[noreturn]] void throwError(Napi::Env env, const char* code, const std::string& message);

// Runs `fn` on the main thread; any torchedit/torch/std exception becomes a thrown JS error.
template <typename Fn>
auto guard(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return translateErrors(code::kInternal, std::forward<Fn>(fn));
  } catch (const Error& e) {
    throwError(env, e.code(), e.what());
  }
}

}  // namespace torchedit::napi
