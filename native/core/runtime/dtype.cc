#include "dtype.h"

#include <array>
#include <utility>

#include "error.h"

namespace torchedit {

namespace {
constexpr std::array<std::pair<const char*, c10::ScalarType>, 10> kDtypes = {{
    {"float32", c10::kFloat},
    {"float64", c10::kDouble},
    {"float16", c10::kHalf},
    {"bfloat16", c10::kBFloat16},
    {"int8", c10::kChar},
    {"int16", c10::kShort},
    {"int32", c10::kInt},
    {"int64", c10::kLong},
    {"uint8", c10::kByte},
    {"bool", c10::kBool},
}};
}  // namespace

c10::ScalarType dtypeFromName(const std::string& name) {
  for (const auto& [n, t] : kDtypes) {
    if (name == n) return t;
  }
  throw Error(code::kDtype, "Unsupported dtype '" + name + "'");
}

std::string dtypeName(c10::ScalarType type) {
  for (const auto& [n, t] : kDtypes) {
    if (type == t) return n;
  }
  throw Error(code::kDtype, std::string("Unsupported tensor dtype ") + c10::toString(type));
}

}  // namespace torchedit
