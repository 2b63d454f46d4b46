// torchedit::Error: the one exception type the core throws. The N-API layer turns it into a
// JS Error whose `code` is stable (see lib/errors.ts for the list users see).
#pragma once

#include <stdexcept>
#include <string>

namespace torchedit {

// Stable codes, shared with lib/errors.ts. Add, never rename.
namespace code {
inline constexpr const char* kInvalidArgument = "ERR_INVALID_ARGUMENT";
inline constexpr const char* kInvalidHandle = "ERR_INVALID_HANDLE";
inline constexpr const char* kDisposed = "ERR_DISPOSED";
inline constexpr const char* kShape = "ERR_SHAPE";
inline constexpr const char* kDtype = "ERR_DTYPE";
inline constexpr const char* kDevice = "ERR_DEVICE";
inline constexpr const char* kDeviceUnavailable = "ERR_DEVICE_UNAVAILABLE";
inline constexpr const char* kFileNotFound = "ERR_FILE_NOT_FOUND";
inline constexpr const char* kModuleLoad = "ERR_MODULE_LOAD";
inline constexpr const char* kForward = "ERR_FORWARD";
inline constexpr const char* kModelMismatch = "ERR_MODEL_MISMATCH";
inline constexpr const char* kOutOfMemory = "ERR_OUT_OF_MEMORY";
inline constexpr const char* kAborted = "ERR_ABORTED";
inline constexpr const char* kNoAttentionMaps = "ERR_NO_ATTENTION_MAPS";
inline constexpr const char* kUnsupported = "ERR_UNSUPPORTED";
inline constexpr const char* kInternal = "ERR_INTERNAL";
}  // namespace code

class Error : public std::runtime_error {
 public:
  Error(const char* code, const std::string& message) : std::runtime_error(message), code_(code) {}
  const char* code() const noexcept { return code_; }

 private:
  const char* code_;
};

// Runs `fn`, translating every exception libtorch or the standard library can throw into a
// torchedit::Error, so nothing but Error leaves the core. `fallbackCode` names what failed
// (e.g. ERR_FORWARD for a module call) when the exception itself carries no code.
template <typename Fn>
auto translateErrors(const char* fallbackCode, Fn&& fn) -> decltype(fn());

}  // namespace torchedit

#include "error_inl.h"
