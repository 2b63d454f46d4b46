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
// S = scale · Q Kᵀ for heads of width d ≤ 16. K is first transposed into [d][keys] so that 16
// consecutive keys are one register; four query rows share each K load (4 FMAs per load).
void scoresSmall(const float* q, int64_t ldq, const float* k, int64_t ldk, int64_t rows, int64_t keys, int64_t d,
                 float scale, float* s, int64_t lds) {
  thread_local std::vector<float> packed;
  const int64_t stride = (keys + 15) & ~int64_t{15};
  if (static_cast<int64_t>(packed.size()) < d * stride) packed.resize(d * stride);
  float* kt = packed.data();
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t c = 0; c < d; ++c) kt[c * stride + j] = k[j * ldk + c];
  for (int64_t c = 0; c < d; ++c)
    for (int64_t j = keys; j < stride; ++j) kt[c * stride + j] = 0.0f;
  const __m512 vs = _mm512_set1_ps(scale);
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float *q0 = q + r * ldq, *q1 = q0 + ldq, *q2 = q1 + ldq, *q3 = q2 + ldq;
    for (int64_t j = 0; j < keys; j += 16) {
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t c = 0; c < d; ++c) {
        const __m512 kv = _mm512_loadu_ps(kt + c * stride + j);
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(q0[c]), kv, a0);
        a1 = _mm512_fmadd_ps(_mm512_set1_ps(q1[c]), kv, a1);
        a2 = _mm512_fmadd_ps(_mm512_set1_ps(q2[c]), kv, a2);
        a3 = _mm512_fmadd_ps(_mm512_set1_ps(q3[c]), kv, a3);
      }
      const __mmask16 m = keys - j >= 16 ? static_cast<__mmask16>(0xFFFF) : tailMask(keys - j);
      float* out = s + r * lds + j;
      _mm512_mask_storeu_ps(out, m, _mm512_mul_ps(a0, vs));
      _mm512_mask_storeu_ps(out + lds, m, _mm512_mul_ps(a1, vs));
      _mm512_mask_storeu_ps(out + 2 * lds, m, _mm512_mul_ps(a2, vs));
      _mm512_mask_storeu_ps(out + 3 * lds, m, _mm512_mul_ps(a3, vs));
    }
  }
  for (; r < rows; ++r) {
    const float* qr = q + r * ldq;
    for (int64_t j = 0; j < keys; j += 16) {
      __m512 a = _mm512_setzero_ps();
      for (int64_t c = 0; c < d; ++c)
        a = _mm512_fmadd_ps(_mm512_set1_ps(qr[c]), _mm512_loadu_ps(kt + c * stride + j), a);
      const __mmask16 m = keys - j >= 16 ? static_cast<__mmask16>(0xFFFF) : tailMask(keys - j);
      _mm512_mask_storeu_ps(s + r * lds + j, m, _mm512_mul_ps(a, vs));
    }
  }
}

// O = beta · O + P V for value width dv ≤ 16: an output row is one (masked) register; four rows
// share each V row's load.
void accumulateSmall(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t rows, int64_t keys, int64_t dv,
                     float beta, float* o, int64_t ldo) {
  const __mmask16 mask = tailMask(dv);  // tailMask(16) is all lanes
  const __m512 vb = _mm512_set1_ps(beta);
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float *p0 = p + r * ldp, *p1 = p0 + ldp, *p2 = p1 + ldp, *p3 = p2 + ldp;
    float* o0 = o + r * ldo;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    if (beta != 0.0f) {
      a0 = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mask, o0));
      a1 = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mask, o0 + ldo));
      a2 = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mask, o0 + 2 * ldo));
      a3 = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mask, o0 + 3 * ldo));
    }
    for (int64_t j = 0; j < keys; ++j) {
      const __m512 vv = _mm512_maskz_loadu_ps(mask, v + j * ldv);
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(p0[j]), vv, a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(p1[j]), vv, a1);
      a2 = _mm512_fmadd_ps(_mm512_set1_ps(p2[j]), vv, a2);
      a3 = _mm512_fmadd_ps(_mm512_set1_ps(p3[j]), vv, a3);
    }
    _mm512_mask_storeu_ps(o0, mask, a0);
    _mm512_mask_storeu_ps(o0 + ldo, mask, a1);
    _mm512_mask_storeu_ps(o0 + 2 * ldo, mask, a2);
    _mm512_mask_storeu_ps(o0 + 3 * ldo, mask, a3);
  }
  for (; r < rows; ++r) {
    const float* pr = p + r * ldp;
    float* orow = o + r * ldo;
    __m512 a = beta != 0.0f ? _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mask, orow)) : _mm512_setzero_ps();
    for (int64_t j = 0; j < keys; ++j)
      a = _mm512_fmadd_ps(_mm512_set1_ps(pr[j]), _mm512_maskz_loadu_ps(mask, v + j * ldv), a);
    _mm512_mask_storeu_ps(orow, mask, a);
  }
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
