#pragma once

#include <c10/util/Exception.h>

#include <new>

namespace torchedit {

namespace detail {
// libtorch reports an allocation failure as a c10::Error whose text starts like this.
inline bool looksLikeOutOfMemory(const std::string& message) {
  return message.find("can't allocate memory") != std::string::npos ||
         message.find("out of memory") != std::string::npos;
}
}  // namespace detail

template <typename Fn>
auto translateErrors(const char* fallbackCode, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    // what() carries a C++ backtrace that means nothing to a JS user.
    std::string message = e.what_without_backtrace();
    throw Error(detail::looksLikeOutOfMemory(message) ? code::kOutOfMemory : fallbackCode, message);
  } catch (const std::bad_alloc&) {
    throw Error(code::kOutOfMemory, "Out of memory");
  } catch (const std::exception& e) {
    throw Error(fallbackCode, e.what());
  }
}

}  // namespace torchedit
