// The per-row work of the fused attention's online softmax (Milakov & Gimelshein 2018,
// arXiv:1805.02867): a row maximum, exp(x − m) with its sum, a rescale, and the bfloat16
// conversions. One table per instruction set; fused_attention.cc picks one at run time.
#pragma once

#include <cstdint>

namespace torchedit::kernels {

struct AttentionRowOps {
  const char* name;  // "scalar", "avx2", "avx512"
  // max over x[0..n); −∞ for n = 0.
  float (*max)(const float* x, int64_t n);
  // x[i] ← exp(x[i] − m) in place; returns Σ x[i] after.
  float (*expSum)(float* x, int64_t n, float m);
  // x[i] ← x[i] · s.
  void (*scale)(float* x, int64_t n, float s);
  // bfloat16 (as its 16 bits) ↔ float32; float → bfloat16 rounds to nearest even, as c10::BFloat16 does.
  void (*bf16ToFloat)(const uint16_t* in, float* out, int64_t n);
  void (*floatToBf16)(const float* in, uint16_t* out, int64_t n);
  // Narrow heads (width ≤ kSmallHead), where a BLAS call does too little work per score to pay for
  // its packing: S[rows × keys] = scale · Q Kᵀ, and O = beta · O + P V, with the scores kept in
  // registers across the head width. nullptr: the caller uses sgemm.
  void (*scoresSmall)(const float* q, int64_t ldq, const float* k, int64_t ldk, int64_t rows, int64_t keys, int64_t d,
                      float scale, float* s, int64_t lds);
  void (*accumulateSmall)(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t rows, int64_t keys,
                          int64_t dv, float beta, float* o, int64_t ldo);
};

// The widest head the *Small functions take (one AVX-512 register of floats).
constexpr int64_t kSmallHead = 16;

// Plain C++ with std::exp: every machine, and the reference the SIMD tables are tested against.
const AttentionRowOps& scalarRowOps();
// nullptr when the compiler could not build them (non-x86); the CPU check is the caller's.
const AttentionRowOps* avx2RowOps();
const AttentionRowOps* avx512RowOps();

}  // namespace torchedit::kernels
