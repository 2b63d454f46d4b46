#include <cmath>
#include <cstring>
#include <limits>

#include "attention_rows.h"

namespace torchedit::kernels {

namespace {
float rowMax(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

float expSum(float* x, int64_t n, float m) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    s += x[i];
  }
  return s;
}

void scale(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void bf16ToFloat(const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits = static_cast<uint32_t>(in[i]) << 16;
    std::memcpy(out + i, &bits, 4);
  }
}

void floatToBf16(const float* in, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, in + i, 4);
    if (std::isnan(in[i])) {
      out[i] = 0x7FC0;
      continue;
    }
    bits += 0x7FFF + ((bits >> 16) & 1);  // round to nearest, ties to even
    out[i] = static_cast<uint16_t>(bits >> 16);
  }
}
}  // namespace

const AttentionRowOps& scalarRowOps() {
  static const AttentionRowOps ops{"scalar", rowMax, expSum, scale, bf16ToFloat, floatToBf16, nullptr, nullptr};
  return ops;
}

}  // namespace torchedit::kernels
