// The graph pass that swaps attention chains in a TorchScript module for the fused kernel
// (kernels/fused_attention.h), on an inference clone that shares the module's parameters.
#pragma once

#include <torch/script.h>

#include <memory>
#include <optional>

namespace torchedit {

// Recognised chains, each ending in softmax over the last dimension whose output has no other use
// than the product with v (a bundle of format 2 also averages some layers' probabilities into its
// cross-attention maps: those sites keep their graph), where s is a constant or a float the graph
// computes (traces of (C // h) ** -0.5):
//   baddbmm(empty, q, kt, beta=0, alpha=s) → softmax → bmm(·, v)       diffusers' AttnProcessor
//   matmul|bmm(q, kt) → mul(·, s) | div(·, 1/s) | nothing → softmax → matmul|bmm(·, v)
// (scaled_dot_product_attention does not exist in libtorch 1.13.) Rewrites `graph` in place and
// returns the number of sites replaced.
int64_t fuseAttention(const std::shared_ptr<torch::jit::Graph>& graph);

struct FusedModule {
  torch::jit::Module module;  // forward inlined and fused; parameters shared with the source
  int64_t sites;
};
// A clone of `module` whose forward runs the fused kernel; nullopt when no site matched (the module
// is then used as it is). For no-grad calls only: the kernel has no backward.
std::optional<FusedModule> fuseAttentionForInference(const torch::jit::Module& module);

// configure({ fusedAttention }): whether modules loaded from now on get a fused clone, and whether
// no-grad calls use it. On by default; process-wide.
void setFusedAttentionEnabled(bool on);
bool fusedAttentionEnabled();

}  // namespace torchedit
