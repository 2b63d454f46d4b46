#include "fused_attention.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "../runtime/error.h"
#include "attention_rows.h"
#include "sgemm.h"

namespace torchedit::kernels {

namespace {
// Tile sizes. A query tile's scores [kQueryTile × kKeyTile] (256 KB in float32) and its output
// rows stay in L2 while key tiles stream past (FlashAttention §3.1). kKeyTile is large enough that
// each sgemm call does real work (the per-call cost of OpenBLAS is ~1 µs); queries are split
// finer so that batch × heads × query tiles spreads over threads.
// Measured (bench/NOTES.md §15): 128 × 512 within noise of the best for head widths 8–80.
constexpr int64_t kQueryTile = 128;
constexpr int64_t kKeyTile = 512;

// A worker thread's tile buffers (grow-only).
struct Scratch {
  std::vector<float> scores, acc, rowMax, rowSum, q, k, v;
};

Scratch& threadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

float* grown(std::vector<float>& buffer, int64_t size) {
  if (buffer.size() < static_cast<size_t>(size)) buffer.resize(size);
  return buffer.data();
}

std::vector<const AttentionRowOps*> available() {
  std::vector<const AttentionRowOps*> out;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (avx512RowOps() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    out.push_back(avx512RowOps());
  if (avx2RowOps() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(avx2RowOps());
#endif
  out.push_back(&scalarRowOps());
  return out;
}

std::atomic<const AttentionRowOps*>& chosen() {
  static std::atomic<const AttentionRowOps*> ops{available().front()};
  return ops;
}

// A [lead..., rows, cols] operand: element (b, r, c) at base + offset(b) + r·rowStride + c, the
// leading dimensions kept as strides (the matmul form's q is a transposed view: no copy needed).
template <typename T>
struct Operand {
  const T* base;
  std::vector<int64_t> leadSizes, leadStrides;
  int64_t rowStride;
  const T* at(int64_t b) const {
    int64_t offset = 0;
    for (int64_t i = static_cast<int64_t>(leadSizes.size()) - 1; i >= 0; --i) {
      offset += (b % leadSizes[i]) * leadStrides[i];
      b /= leadSizes[i];
    }
    return base + offset;
  }
};

template <typename T>
Operand<T> operand(const at::Tensor& t) {
  // A single row's stride is arbitrary in torch; the BLAS still wants one ≥ the row width.
  Operand<T> o{t.data_ptr<T>(), {}, {}, t.size(-2) == 1 ? t.size(-1) : t.stride(-2)};
  for (int64_t i = 0; i + 2 < t.dim(); ++i) {
    o.leadSizes.push_back(t.size(i));
    o.leadStrides.push_back(t.stride(i));
  }
  return o;
}

// Rows as float32: a pointer into the tensor for float inputs, a converted copy for bfloat16.
template <typename T>
const float* floatRows(const T* rows, int64_t count, int64_t width, int64_t stride, float* buffer,
                       const AttentionRowOps& ops, int64_t& ld) {
  if constexpr (std::is_same_v<T, float>) {
    ld = stride;
    return rows;
  } else {
    for (int64_t r = 0; r < count; ++r)
      ops.bf16ToFloat(reinterpret_cast<const uint16_t*>(rows + r * stride), buffer + r * width, width);
    ld = width;
    return buffer;
  }
}

template <typename T>
void run(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor& out, float scale) {
  const AttentionRowOps& ops = *chosen().load();
  const int64_t n = q.size(-2), d = q.size(-1), m = k.size(-2), dv = v.size(-1);
  const int64_t batch = out.numel() / std::max<int64_t>(1, n * dv);
  const Operand<T> Q = operand<T>(q), K = operand<T>(k), V = operand<T>(v);
  T* O = out.data_ptr<T>();
  const int64_t queryTiles = (n + kQueryTile - 1) / kQueryTile;
  const float negInf = -std::numeric_limits<float>::infinity();
  // Narrow heads (the reduced bench UNet's 8 and 16) take the register kernels where the CPU has them.
  const bool smallScores = ops.scoresSmall && d <= kSmallHead;
  const bool smallValues = ops.accumulateSmall && dv <= kSmallHead;

  at::parallel_for(0, batch * queryTiles, 1, [&](int64_t begin, int64_t end) {
    const int64_t bc = std::min(kKeyTile, m);
    // Per-thread scratch, kept between calls: the scores tile alone is 256 KB, above glibc's mmap
    // threshold, so fresh vectors would mmap and fault in new pages at every attention of every
    // step (test/runtime/allocator.test.ts counts them). Every buffer is written before it is read.
    Scratch& scratch = threadScratch();
    float* const scores = grown(scratch.scores, kQueryTile * bc);
    float* const acc = grown(scratch.acc, kQueryTile * dv);
    float* const rowMax = grown(scratch.rowMax, kQueryTile);
    float* const rowSum = grown(scratch.rowSum, kQueryTile);
    float* qBuf = nullptr;
    float* kBuf = nullptr;
    float* vBuf = nullptr;
    if constexpr (!std::is_same_v<T, float>) {
      qBuf = grown(scratch.q, kQueryTile * d);
      kBuf = grown(scratch.k, bc * d);
      vBuf = grown(scratch.v, bc * dv);
    }
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / queryTiles, i0 = (task % queryTiles) * kQueryTile;
      const int64_t br = std::min(kQueryTile, n - i0);
      int64_t ldq, ldk, ldv;
      const float* qt = floatRows<T>(Q.at(b) + i0 * Q.rowStride, br, d, Q.rowStride, qBuf, ops, ldq);
      std::fill(rowMax, rowMax + br, negInf);
      std::fill(rowSum, rowSum + br, 0.0f);
      for (int64_t j0 = 0; j0 < m; j0 += bc) {
        const int64_t bk = std::min(bc, m - j0);
        const float* kt = floatRows<T>(K.at(b) + j0 * K.rowStride, bk, d, K.rowStride, kBuf, ops, ldk);
        const float* vt = floatRows<T>(V.at(b) + j0 * V.rowStride, bk, dv, V.rowStride, vBuf, ops, ldv);
        // S = scale · Q_i K_jᵀ (Algorithm 1, line 9)
        if (smallScores)
          ops.scoresSmall(qt, ldq, kt, ldk, br, bk, d, scale, scores, bk);
        else
          sgemm(false, true, br, bk, d, scale, qt, ldq, kt, ldk, 0.0f, scores, bk);
        // Online softmax (lines 10–12): new row maxima, P = exp(S − m_new), rescale what the
        // earlier key tiles left in the sum and the output by exp(m_old − m_new).
        for (int64_t r = 0; r < br; ++r) {
          float* s = scores + r * bk;
          const float mOld = rowMax[r], mNew = std::max(mOld, ops.max(s, bk));
          const float sum = ops.expSum(s, bk, mNew);
          if (j0 > 0) {
            const float alpha = std::exp(mOld - mNew);
            rowSum[r] = rowSum[r] * alpha + sum;
            if (alpha != 1.0f) ops.scale(acc + r * dv, dv, alpha);
          } else {
            rowSum[r] = sum;
          }
          rowMax[r] = mNew;
        }
        // O_i += P V_j (the first tile overwrites)
        if (smallValues)
          ops.accumulateSmall(scores, bk, vt, ldv, br, bk, dv, j0 > 0 ? 1.0f : 0.0f, acc, dv);
        else
          sgemm(false, false, br, dv, bk, 1.0f, scores, bk, vt, ldv, j0 > 0 ? 1.0f : 0.0f, acc, dv);
      }
      // O_i / ℓ_i (line 15), written in the output's dtype.
      T* dst = O + (b * n + i0) * dv;
      for (int64_t r = 0; r < br; ++r) {
        float* a = acc + r * dv;
        ops.scale(a, dv, 1.0f / rowSum[r]);
        if constexpr (std::is_same_v<T, float>) {
          std::copy(a, a + dv, dst + r * dv);
        } else {
          ops.floatToBf16(a, reinterpret_cast<uint16_t*>(dst + r * dv), dv);
        }
      }
    }
  });
}

bool needsComposite(const at::Tensor& q, const at::Tensor& kt, const at::Tensor& v) {
  if (!q.device().is_cpu() || !kt.device().is_cpu() || !v.device().is_cpu()) return true;
  if (c10::GradMode::is_enabled() && (q.requires_grad() || kt.requires_grad() || v.requires_grad())) return true;
  if (q.dim() < 2 || q.dim() != kt.dim() || q.dim() != v.dim()) return true;
  for (int64_t i = 0; i + 2 < q.dim(); ++i)
    if (q.size(i) != kt.size(i) || q.size(i) != v.size(i)) return true;     // broadcasting: not fused
  if (q.size(-1) != kt.size(-2) || kt.size(-1) != v.size(-2)) return true;  // the composite reports the mismatch
  for (const auto* t : {&q, &kt, &v}) {
    auto s = t->scalar_type();
    if (s != at::kFloat && s != at::kBFloat16 && s != at::kHalf) return true;
  }
  return q.size(-2) == 0 || kt.size(-1) == 0 || q.size(-1) == 0 || v.size(-1) == 0;
}

// Last dimension unit-stride and rows that do not overlap (a BLAS needs ld ≥ the row width);
// strided rows and leading dimensions are fine.
at::Tensor rowsContiguous(const at::Tensor& t, at::ScalarType dtype) {
  at::Tensor r = t.scalar_type() == dtype ? t : t.to(dtype);
  const bool ok = r.stride(-1) == 1 && (r.size(-2) == 1 || r.stride(-2) >= r.size(-1));
  return ok ? r : r.contiguous();
}
}  // namespace

at::Tensor fusedAttentionReference(const at::Tensor& q, const at::Tensor& kt, const at::Tensor& v, double scale) {
  return at::matmul(at::softmax(at::matmul(q, kt) * scale, -1), v);
}

at::Tensor fusedAttention(const at::Tensor& q, const at::Tensor& kt, const at::Tensor& v, double scale) {
  if (needsComposite(q, kt, v)) return fusedAttentionReference(q, kt, v, scale);
  const bool bf16 =
      q.scalar_type() == at::kBFloat16 && kt.scalar_type() == at::kBFloat16 && v.scalar_type() == at::kBFloat16;
  const at::ScalarType compute = bf16 ? at::kBFloat16 : at::kFloat;
  at::Tensor qc = rowsContiguous(q, compute);
  at::Tensor kc = rowsContiguous(kt.transpose(-1, -2), compute);  // kt of a contiguous k: a free view
  at::Tensor vc = rowsContiguous(v, compute);
  std::vector<int64_t> shape(q.sizes().begin(), q.sizes().end());
  shape.back() = v.size(-1);
  at::Tensor out = at::empty(shape, q.options().dtype(compute));
  if (bf16)
    run<at::BFloat16>(qc, kc, vc, out, static_cast<float>(scale));
  else
    run<float>(qc, kc, vc, out, static_cast<float>(scale));
  const at::ScalarType want = q.scalar_type() == v.scalar_type() ? q.scalar_type() : at::kFloat;
  return out.scalar_type() == want ? out : out.to(want);
}

std::string setAttentionSimd(const std::string& path) {
  for (const AttentionRowOps* ops : available()) {
    if (path == "auto" ? ops == available().front() : path == ops->name) {
      chosen().store(ops);
      return ops->name;
    }
  }
  throw Error(code::kInvalidArgument, "Attention SIMD path '" + path + "' is not available on this CPU");
}

std::string attentionSimd() { return chosen().load()->name; }

std::vector<std::string> availableAttentionSimd() {
  std::vector<std::string> names;
  for (const AttentionRowOps* ops : available()) names.emplace_back(ops->name);
  return names;
}

const char* fusedAttentionOpName() { return "torchedit::attention"; }

at::Tensor fusedAttentionTensorScale(const at::Tensor& q, const at::Tensor& kt, const at::Tensor& v,
                                     const at::Tensor& scale, bool divide) {
  if (scale.numel() == 1 && !(c10::GradMode::is_enabled() && scale.requires_grad())) {
    const double s = scale.item<double>();
    return fusedAttention(q, kt, v, divide ? 1.0 / s : s);
  }
  at::Tensor scores = at::matmul(q, kt);  // not one number: the chain as written
  return at::matmul(at::softmax(divide ? scores / scale : scores * scale, -1), v);
}

TORCH_LIBRARY(torchedit, m) {
  m.def("attention(Tensor q, Tensor kt, Tensor v, float scale) -> Tensor", &fusedAttention);
  m.def("attention.tensor_scale(Tensor q, Tensor kt, Tensor v, Tensor scale, bool divide) -> Tensor",
        &fusedAttentionTensorScale);
}

}  // namespace torchedit::kernels
