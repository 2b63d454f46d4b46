// The dtype names torchedit uses in its API, mapped to torch scalar types.
#pragma once

#include <c10/core/ScalarType.h>

#include <string>

namespace torchedit {

// Throws ERR_DTYPE for a name torchedit does not support.
c10::ScalarType dtypeFromName(const std::string& name);
// Throws ERR_DTYPE for a scalar type with no torchedit name (complex, quantized).
std::string dtypeName(c10::ScalarType type);

}  // namespace torchedit
