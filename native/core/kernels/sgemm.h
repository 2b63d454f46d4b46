// A row-major float GEMM on raw pointers, for kernels that multiply tiles of larger tensors (the
// fused attention). Dispatching at::mm per tile costs microseconds of tensor bookkeeping; the BLAS
// libtorch already loaded (OpenBLAS on Debian) is called directly instead.
#pragma once

#include <cstdint>

namespace torchedit::kernels {

// C[M×N] = alpha · op(A) · op(B) + beta · C, row-major, op(X) = Xᵀ when trans is true; lda/ldb/ldc
// are row strides in elements. Uses the loaded BLAS's sgemm_ when there is one, else at::addmm_out.
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// "sgemm_" when a loaded BLAS provides it, else "at::addmm" (reported by tests and the bench).
const char* sgemmProvider();

}  // namespace torchedit::kernels
