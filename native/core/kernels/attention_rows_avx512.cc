// AVX-512 (F, BW, VL, DQ) row operations, with masked tails. Compiled for those instructions by
// the pragma below, called only when the CPU reports them (fused_attention.cc).
#include "attention_rows.h"

// GCC only: clang has no `#pragma GCC target` (it would take the scalar path).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")
// GCC 12 reports its own _mm512_undefined_* placeholders in masked intrinsics as uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <limits>
#include <vector>

namespace torchedit::kernels {

namespace {
inline __mmask16 tailMask(int64_t left) { return static_cast<__mmask16>((1u << left) - 1u); }

// The same exp as attention_rows_avx2.cc (Cody–Waite reduction, Cephes expf polynomial); 2ⁿ is
// applied by scalef, which handles the exponent range itself.
inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-87.33654f), x);
  x = _mm512_min_ps(_mm512_set1_ps(88.0f), x);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

float rowMax(const float* x, int64_t n) {
  const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 m0 = lowest, m1 = lowest;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i + 16 <= n; i += 16) m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
  if (i < n) m1 = _mm512_max_ps(m1, _mm512_mask_loadu_ps(lowest, tailMask(n - i), x + i));
  return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

float expSum(float* x, int64_t n, float m) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512 a = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
    __m512 b = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vm));
    _mm512_storeu_ps(x + i, a);
    _mm512_storeu_ps(x + i + 16, b);
    s0 = _mm512_add_ps(s0, a);
    s1 = _mm512_add_ps(s1, b);
  }
  for (; i + 16 <= n; i += 16) {
    __m512 a = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
    _mm512_storeu_ps(x + i, a);
    s0 = _mm512_add_ps(s0, a);
  }
  if (i < n) {
    const __mmask16 k = tailMask(n - i);
    __m512 a = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
    _mm512_mask_storeu_ps(x + i, k, a);
    s1 = _mm512_mask_add_ps(s1, k, s1, a);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

void scale(float* x, int64_t n, float s) {
  const __m512 vs = _mm512_set1_ps(s);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), vs));
  if (i < n) {
    const __mmask16 k = tailMask(n - i);
    _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vs));
  }
}

void bf16ToFloat(const uint16_t* in, float* out, int64_t n) {
  int64_t i = 0;
  for (; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tailMask(n - i);
    __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, in + i));
    _mm512_mask_storeu_ps(out + i, k, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
  }
}

void floatToBf16(const float* in, uint16_t* out, int64_t n) {
  const __m512i bias = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1), qnan = _mm512_set1_epi32(0x7FC0);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tailMask(n - i);
    __m512 f = _mm512_maskz_loadu_ps(k, in + i);
    __m512i bits = _mm512_castps_si512(f);
    __m512i rounded =
        _mm512_add_epi32(bits, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(bits, 16), one)));
    rounded = _mm512_srli_epi32(rounded, 16);
    rounded = _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q), qnan);
    _mm256_mask_storeu_epi16(out + i, k, _mm512_cvtepi32_epi16(rounded));
  }
}
// Packs rows [0, keys) × columns [0, d) of a row-major matrix transposed, [d][stride] with stride
// a multiple of 16 and the padding zeroed, so that 16 consecutive keys are one register.
const float* packTransposed(const float* x, int64_t ld, int64_t keys, int64_t d, int64_t& stride) {
  thread_local std::vector<float> packed;
  stride = (keys + 15) & ~int64_t{15};
  if (static_cast<int64_t>(packed.size()) < d * stride) packed.resize(d * stride);
  float* t = packed.data();
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t c = 0; c < d; ++c) t[c * stride + j] = x[j * ld + c];
  for (int64_t c = 0; c < d; ++c)
    for (int64_t j = keys; j < stride; ++j) t[c * stride + j] = 0.0f;
  return t;
}

// S = scale · Q Kᵀ for heads of width d ≤ 16, with K transposed (packTransposed). R query rows
// share each K load; R = 8 keeps 8 independent FMA chains in flight (an FMA's latency is 4 cycles
// and two issue per cycle: 4 chains ran the FMA units at half rate).
template <int R>
void scoreRows(const float* q, int64_t ldq, const float* kt, int64_t stride, int64_t keys, int64_t d, __m512 vs,
               float* s, int64_t lds) {
  for (int64_t j = 0; j < keys; j += 16) {
    __m512 a[R];
    for (int i = 0; i < R; ++i) a[i] = _mm512_setzero_ps();
    for (int64_t c = 0; c < d; ++c) {
      const __m512 kv = _mm512_loadu_ps(kt + c * stride + j);
      for (int i = 0; i < R; ++i) a[i] = _mm512_fmadd_ps(_mm512_set1_ps(q[i * ldq + c]), kv, a[i]);
    }
    const __mmask16 m = keys - j >= 16 ? static_cast<__mmask16>(0xFFFF) : tailMask(keys - j);
    for (int i = 0; i < R; ++i) _mm512_mask_storeu_ps(s + i * lds + j, m, _mm512_mul_ps(a[i], vs));
  }
}

void scoresSmall(const float* q, int64_t ldq, const float* k, int64_t ldk, int64_t rows, int64_t keys, int64_t d,
                 float scale, float* s, int64_t lds) {
  int64_t stride;
  const float* kt = packTransposed(k, ldk, keys, d, stride);
  const __m512 vs = _mm512_set1_ps(scale);
  int64_t r = 0;
  for (; r + 8 <= rows; r += 8) scoreRows<8>(q + r * ldq, ldq, kt, stride, keys, d, vs, s + r * lds, lds);
  for (; r < rows; ++r) scoreRows<1>(q + r * ldq, ldq, kt, stride, keys, d, vs, s + r * lds, lds);
}

// O = beta · O + P V for value width dv ≤ 16: an output row is one (masked) register; R rows
// share each V row's load (R = 8: enough independent FMA chains, as in scoreRows).
template <int R>
void accumulateRows(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t keys, __mmask16 mask, float beta,
                    float* o, int64_t ldo) {
  __m512 a[R];
  for (int i = 0; i < R; ++i)
    a[i] = beta != 0.0f ? _mm512_mul_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, o + i * ldo))
                        : _mm512_setzero_ps();
  for (int64_t j = 0; j < keys; ++j) {
    const __m512 vv = _mm512_maskz_loadu_ps(mask, v + j * ldv);
    for (int i = 0; i < R; ++i) a[i] = _mm512_fmadd_ps(_mm512_set1_ps(p[i * ldp + j]), vv, a[i]);
  }
  for (int i = 0; i < R; ++i) _mm512_mask_storeu_ps(o + i * ldo, mask, a[i]);
}

// The same for value width 8, where a row register would be half empty: V is transposed
// (packTransposed) and each output is a dot product over 16 keys per register, reduced at the
// end: half the FMAs of accumulateRows. Two rows share each V load (16 accumulators).
void accumulateWidth8(const float* p, int64_t ldp, const float* vt, int64_t stride, int64_t keys, float beta,
                      float* o) {
  __m512 a0[8], a1[8];
  for (int c = 0; c < 8; ++c) a0[c] = a1[c] = _mm512_setzero_ps();
  for (int64_t j = 0; j < keys; j += 16) {
    const __mmask16 m = keys - j >= 16 ? static_cast<__mmask16>(0xFFFF) : tailMask(keys - j);
    const __m512 p0 = _mm512_maskz_loadu_ps(m, p + j), p1 = _mm512_maskz_loadu_ps(m, p + ldp + j);
    for (int c = 0; c < 8; ++c) {
      const __m512 vv = _mm512_loadu_ps(vt + c * stride + j);
      a0[c] = _mm512_fmadd_ps(p0, vv, a0[c]);
      a1[c] = _mm512_fmadd_ps(p1, vv, a1[c]);
    }
  }
  for (int c = 0; c < 8; ++c) {
    const float s0 = _mm512_reduce_add_ps(a0[c]), s1 = _mm512_reduce_add_ps(a1[c]);
    o[c] = beta != 0.0f ? beta * o[c] + s0 : s0;
    o[8 + c] = beta != 0.0f ? beta * o[8 + c] + s1 : s1;
  }
}

void accumulateSmall(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t rows, int64_t keys, int64_t dv,
                     float beta, float* o, int64_t ldo) {
  int64_t r = 0;
  // Width 8 over enough keys to repay the transpose and the reductions (the bench UNet's top level).
  if (dv == 8 && ldo == 8 && keys >= 128) {
    int64_t stride;
    const float* vt = packTransposed(v, ldv, keys, 8, stride);
    for (; r + 2 <= rows; r += 2) accumulateWidth8(p + r * ldp, ldp, vt, stride, keys, beta, o + r * ldo);
  }
  const __mmask16 mask = tailMask(dv);  // tailMask(16) is all lanes
  for (; r + 8 <= rows; r += 8) accumulateRows<8>(p + r * ldp, ldp, v, ldv, keys, mask, beta, o + r * ldo, ldo);
  for (; r < rows; ++r) accumulateRows<1>(p + r * ldp, ldp, v, ldv, keys, mask, beta, o + r * ldo, ldo);
}
}  // namespace

const AttentionRowOps* avx512RowOps() {
  static const AttentionRowOps ops{"avx512",    rowMax,      expSum,      scale,
                                   bf16ToFloat, floatToBf16, scoresSmall, accumulateSmall};
  return &ops;
}

}  // namespace torchedit::kernels
#pragma GCC pop_options

#else
namespace torchedit::kernels {
const AttentionRowOps* avx512RowOps() { return nullptr; }
}  // namespace torchedit::kernels
#endif
