// softmax(q·kᵀ·scale)·v in one pass over key tiles, never materialising the [n, m] score matrix:
// FlashAttention's tiling (Dao et al. 2022, arXiv:2205.14135, Algorithm 1) with the online
// softmax (Milakov & Gimelshein 2018, arXiv:1805.02867), on the CPU. Inference only.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace torchedit::kernels {

// q [..., n, d], kt [..., d, m] (the keys transposed, as attention graphs compute q·kᵀ),
// v [..., m, dv]; the leading dimensions equal. Returns [..., n, dv]: bfloat16 when q, kt and v
// all are (tiles computed in float32), else float32 or q's dtype. Tensors that need gradients,
// other devices and dtypes, and broadcasting leading dimensions take the unfused composite
// (fusedAttentionReference), so the op is always correct where the graph pass puts it.
at::Tensor fusedAttention(const at::Tensor& q, const at::Tensor& kt, const at::Tensor& v, double scale);

// The unfused composite, softmax(matmul(q, kt)·scale)·v: the fallback, and the tests' reference.
at::Tensor fusedAttentionReference(const at::Tensor& q, const at::Tensor& kt, const at::Tensor& v, double scale);

// Which row operations the kernel uses: "auto" (the best the CPU reports), or one of "avx512",
// "avx2", "scalar" (tests force each; an unavailable one throws ERR_INVALID_ARGUMENT).
// Process-wide. Returns the path now in effect.
std::string setAttentionSimd(const std::string& path);
std::string attentionSimd();
// The paths this CPU and build can run, best first (always ends with "scalar").
std::vector<std::string> availableAttentionSimd();

// The scale as a tensor the graph computed (traces of (C // h) ** -0.5): one number → the kernel;
// anything else → the chain as written (scores · scale or / scale, softmax, · v).
at::Tensor fusedAttentionTensorScale(const at::Tensor& q, const at::Tensor& kt, const at::Tensor& v,
                                     const at::Tensor& scale, bool divide);

// The registered TorchScript op the graph pass inserts: torchedit::attention(q, kt, v, scale), and
// its overload attention.tensor_scale(q, kt, v, scale, divide).
const char* fusedAttentionOpName();

}  // namespace torchedit::kernels
