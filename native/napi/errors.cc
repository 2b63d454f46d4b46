#include "errors.h"

namespace torchedit::napi {

Napi::Error makeError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

void throwError(Napi::Env env, const char* code, const std::string& message) { throw makeError(env, code, message); }

}  // namespace torchedit::napi
