#include "sgemm.h"

#include <dlfcn.h>
#include <link.h>

#include <ATen/ATen.h>

#include <mutex>

namespace torchedit::kernels {

namespace {
// The Fortran BLAS interface (LP64: Debian's OpenBLAS, the reference BLAS): column-major, all by pointer.
using SgemmFn = void (*)(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                         const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                         const float* beta, float* c, const int* ldc);

// libtorch's BLAS is loaded with RTLD_LOCAL (lib/loader), so dlsym(RTLD_DEFAULT) cannot see it:
// look in every loaded object, as runtime/blas_threads.cc does for OpenBLAS's thread API.
int visit(struct dl_phdr_info* info, size_t, void* data) {
  auto* fn = static_cast<SgemmFn*>(data);
  if (*fn || !info->dlpi_name || !info->dlpi_name[0]) return 0;
  void* handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
  if (!handle) return 0;
  if (auto found = reinterpret_cast<SgemmFn>(dlsym(handle, "sgemm_"))) {
    *fn = found;
    return 1;  // keep the handle: the library stays loaded with libtorch anyway
  }
  dlclose(handle);
  return 0;
}

SgemmFn blasSgemm() {
  static SgemmFn fn = nullptr;
  static std::once_flag once;
  std::call_once(once, [] { dl_iterate_phdr(visit, &fn); });
  return fn;
}
}  // namespace

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (SgemmFn fn = blasSgemm()) {
    // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: the same buffers, operands swapped.
    const char ta = transB ? 'T' : 'N', tb = transA ? 'T' : 'N';
    const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
    const int la = static_cast<int>(ldb), lb = static_cast<int>(lda), lc = static_cast<int>(ldc);
    fn(&ta, &tb, &m, &n, &k, &alpha, B, &la, A, &lb, &beta, C, &lc);
    return;
  }
  auto f = at::TensorOptions().dtype(at::kFloat);
  at::Tensor a =
      at::from_blob(const_cast<float*>(A), transA ? at::IntArrayRef{K, M} : at::IntArrayRef{M, K}, {lda, 1}, f);
  at::Tensor b =
      at::from_blob(const_cast<float*>(B), transB ? at::IntArrayRef{N, K} : at::IntArrayRef{K, N}, {ldb, 1}, f);
  at::Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, f);
  if (transA) a = a.t();
  if (transB) b = b.t();
  if (beta == 0.0f) c.zero_();
  at::addmm_out(c, c, a, b, beta, alpha);
}

const char* sgemmProvider() { return blasSgemm() ? "sgemm_" : "at::addmm"; }

}  // namespace torchedit::kernels
